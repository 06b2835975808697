"""MemoryStorage against the storage contract."""

import pytest
from storage_contract import CONTRACT

from ostracon.storage import MemoryStorage


class MemoryHarness:
    persistent = False

    def open(self):
        return MemoryStorage()


@pytest.mark.parametrize("check", CONTRACT, ids=lambda f: f.__name__)
def test_contract(check):
    check(MemoryHarness())
