import os
import sys

import pytest

# Test helpers (simulator, contract suites) are imported as plain modules.
sys.path.insert(0, os.path.dirname(__file__))

from db_helpers import open_db  # noqa: E402 (found through the path set up above)


# The Database API tests' `db` (a fresh database in memory, closed afterwards) and `col` (its
# "todos" collection). Modules that need another set-up define fixtures of these names.
@pytest.fixture
def db():
    d = open_db()
    yield d
    d.close()


@pytest.fixture
def col(db):
    return db.collection("todos")
