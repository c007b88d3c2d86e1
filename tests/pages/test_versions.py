"""The version map (dolite/pages/versions.py): which entries a read of a given head may use."""

from dolite.pages.format import Head
from dolite.pages.versions import VersionMap


def _head(version: int, size: int = 4 * 4096, incarnation: int = 7) -> Head:
    return Head(version=version, size=size, chunk_size=4096, retention=600.0, time=0.0, id=incarnation)


def test_an_older_head_uses_only_entries_not_newer_than_itself():
    versions = VersionMap()
    versions.replace(_head(3), {0: 1, 1: 3})
    versions.committed(_head(3), _head(4), [2])
    assert versions.version_for(_head(4), 2) == 4
    assert versions.version_for(_head(2), 0) == 1  # unchanged since v1: still the one
    assert versions.version_for(_head(2), 1) is None  # written at v3: must be looked up
    assert versions.version_for(_head(2), 2) is None


def test_another_incarnation_uses_no_entry():
    versions = VersionMap()
    versions.replace(_head(3), {0: 1})
    assert versions.version_for(_head(3, incarnation=8), 0) is None
    assert versions.known(_head(3, incarnation=8), [0]) == {}
    assert versions.known(_head(3), [0, 1]) == {0: 1}


def test_a_commit_on_another_base_starts_over_and_truncation_drops_cut_chunks():
    versions = VersionMap()
    versions.replace(_head(3), {0: 1, 1: 2, 3: 3})
    versions.committed(_head(5), _head(6), [0])  # base is not what the map holds
    assert versions.snapshot() == ((7, 6), {0: 6})
    versions.replace(_head(6), {0: 6, 1: 2, 3: 3})
    versions.committed(_head(6), _head(7, size=2 * 4096), [1])
    assert versions.snapshot() == ((7, 7), {0: 6, 1: 7})


def test_found_records_only_for_the_current_head_and_keeps_the_first():
    versions = VersionMap()
    versions.replace(_head(5), {})
    versions.found(_head(4), 0, 2)  # an older head: its answer may be stale for v5
    assert versions.known(_head(5), [0]) == {}
    versions.found(_head(5), 0, 2)
    versions.found(_head(5), 0, 1)
    assert versions.known(_head(5), [0]) == {0: 2}
