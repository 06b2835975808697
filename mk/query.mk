# Queries, indexes, rebuilds, schemas. Tests run with the rest of tests/ (test-py);
# this fragment only adds the query benchmark to `make bench`.

.PHONY: bench-query

bench-query: setup
	$(VPY) bench/bench_query.py

BENCH_STEPS += bench-query
