"""MemoryStorage against the storage contract."""

import pytest

from ostracon.storage import MemoryStorage
from storage_contract import CONTRACT


class MemoryHarness:
    persistent = False

    def open(self):
        return MemoryStorage()


@pytest.mark.parametrize("check", CONTRACT, ids=lambda f: f.__name__)
def test_contract(check):
    check(MemoryHarness())
