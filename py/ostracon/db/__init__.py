"""The public face of Ostracon: `Database` (facade), `Collection` (document API), the write
sink, indexing, schemas, GraphQL glue and opening. See docs/ARCHITECTURE.md."""

from ..core.query.filters import (
           IndexBuildingError,
           QueryCursorError,
           QueryTooExpensiveError,
)
from ..core.query.schema import LensNotFoundError, SchemaValidationError
from .collection import Collection
from .database import Database
from .opening import open_database
from .text import Text, TextHandle

__all__ = ["Database", "Collection", "open_database", "QueryTooExpensiveError",
           "IndexBuildingError", "QueryCursorError",
           "SchemaValidationError", "LensNotFoundError", "Text", "TextHandle"]
