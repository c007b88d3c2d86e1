"""Walking a SQLite file's b-trees page by page, to tell which table or index owns which
page even when some pages cannot be read.

The walker only needs ``read_page(pgno) -> bytes | None`` (None: unreadable). It follows
each tree from its root page (the schema's ``rootpage``), records every page it reaches
(interior, leaf and overflow pages) as owned by that tree, and for a rowid table the rowid
ranges that sit under unreadable pages, which is what a salvage must skip. The format is
SQLite's documented file format (https://sqlite.org/fileformat2.html#b_tree_pages).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

ReadPage = Callable[[int], "bytes | None"]
INTERIOR_INDEX, INTERIOR_TABLE, LEAF_INDEX, LEAF_TABLE = 2, 5, 10, 13


@dataclass
class Tree:
    """One b-tree: the pages it owns, and the damage found in it."""

    name: str
    kind: str  # "table" or "index"
    root: int
    pages: set[int] = field(default_factory=set)
    unreadable: set[int] = field(default_factory=set)  # its pages that could not be read
    lost: list[tuple[int | None, int | None]] = field(default_factory=list)  # rowid (lo, hi]

    @property
    def damaged(self) -> bool:
        return bool(self.unreadable)


def walk(read_page: ReadPage, page_size: int, reserved: int, roots: list[tuple[str, str, int]]) -> list[Tree]:
    """Walk every tree in ``roots`` ((name, "table"|"index", root page)); the schema
    table itself (root page 1) is always walked first."""
    usable = page_size - reserved
    trees = [Tree("sqlite_schema", "table", 1)] + [Tree(n, k, r) for n, k, r in roots if r]
    for tree in trees:
        _walk_page(tree, read_page, usable, tree.root, None, None, set())
    return trees


def _walk_page(tree: Tree, read_page: ReadPage, usable: int, pgno: int, lo, hi, seen: set[int]) -> None:
    """Walk the subtree at ``pgno``, whose rowids (tables) lie in ``(lo, hi]``."""
    if pgno in seen or pgno < 1:
        return  # a loop or a bad pointer: damage, reported through the unreadable pages
    seen.add(pgno)
    tree.pages.add(pgno)
    page = read_page(pgno)
    start = 100 if pgno == 1 else 0
    kind = page[start] if page else None
    if kind not in (INTERIOR_INDEX, INTERIOR_TABLE, LEAF_INDEX, LEAF_TABLE):
        tree.unreadable.add(pgno)
        tree.lost.append((lo, hi))
        return
    cells = int.from_bytes(page[start + 3:start + 5], "big")
    interior = kind in (INTERIOR_INDEX, INTERIOR_TABLE)
    pointers = start + (12 if interior else 8)
    below = lo
    for i in range(cells):
        cell = int.from_bytes(page[pointers + 2 * i:pointers + 2 * i + 2], "big")
        if kind == INTERIOR_TABLE:
            key = signed(_varint(page, cell + 4)[0])
            _walk_page(tree, read_page, usable, _u32(page, cell), below, key, seen)
            below = key
        elif kind == INTERIOR_INDEX:
            _walk_page(tree, read_page, usable, _u32(page, cell), None, None, seen)
            _walk_overflow(tree, read_page, usable, page, cell + 4, False, seen)
        else:
            _walk_overflow(tree, read_page, usable, page, cell, kind == LEAF_TABLE, seen)
    if interior:
        _walk_page(tree, read_page, usable, _u32(page, start + 8), below, hi, seen)


def _walk_overflow(tree: Tree, read_page: ReadPage, usable: int, page: bytes, at: int,
                   table_leaf: bool, seen: set[int]) -> None:
    """Follow the overflow chain of the cell payload at ``at`` (if it spills)."""
    size, at = _varint(page, at)
    rowid = None
    if table_leaf:
        rowid, at = _varint(page, at)
        rowid = signed(rowid)
    local = _local_bytes(size, usable, table_leaf)
    if local == size:
        return
    left = -(-(size - local) // (usable - 4))
    pgno = _u32(page, at + local)
    while left and pgno not in seen and pgno >= 1:
        seen.add(pgno)
        tree.pages.add(pgno)
        overflow = read_page(pgno)
        if overflow is None:
            tree.unreadable.add(pgno)
            if rowid is not None:
                tree.lost.append((rowid - 1, rowid))
            return
        pgno, left = _u32(overflow, 0), left - 1


def _local_bytes(size: int, usable: int, table_leaf: bool) -> int:
    """Bytes of a payload of ``size`` stored in the cell itself (the file format's rule)."""
    most = usable - 35 if table_leaf else (usable - 12) * 64 // 255 - 23
    if size <= most:
        return size
    least = (usable - 12) * 32 // 255 - 23
    local = least + (size - least) % (usable - 4)
    return local if local <= most else least


def _u32(data: bytes, at: int) -> int:
    return int.from_bytes(data[at:at + 4], "big")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """SQLite's big-endian varint at ``at``: (value, offset after it)."""
    value = 0
    for i in range(9):
        byte = data[at + i] if at + i < len(data) else 0
        if i == 8:
            return (value << 8) | byte, at + 9
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return value, at + 9  # pragma: no cover


def signed(rowid: int) -> int:
    """A rowid read as a varint, as SQLite's signed 64-bit integer."""
    return rowid - (1 << 64) if rowid >= 1 << 63 else rowid
