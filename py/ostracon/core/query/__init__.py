"""Queries over document views: the filter language (`filters`), the planner, secondary indexes,
index rebuild scheduling and collection tiers, and schemas with lenses. Pure, like the rest of core."""
