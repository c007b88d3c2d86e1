"""Where damage in a stored database lies: from bad chunks to file pages to the tables
and indexes that own them (used by ``check`` and ``salvage``)."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from dolite.errors import CorruptChunk, DoliteError
from dolite.ops.btree import Tree, walk
from dolite.pages import Head, PageStore


@dataclass
class Damage:
    """The current version's unreadable chunks and pages, and who owns those pages."""

    page_size: int
    bad_chunks: dict[int, str] = field(default_factory=dict)  # chunk -> why
    trees: list[Tree] = field(default_factory=list)
    schema_error: str | None = None  # the schema could not be read: owners unknown

    def pages_of_chunk(self, chunk: int, chunk_size: int) -> range:
        """1-based page numbers with bytes in ``chunk``."""
        first = chunk * chunk_size // self.page_size + 1
        last = ((chunk + 1) * chunk_size - 1) // self.page_size + 1
        return range(first, last + 1)

    def owners(self, pages) -> dict[str, list[int]]:
        """Owner name (table or index; "unreferenced" for free pages or pages below a
        damaged one) -> the given pages it owns."""
        found: dict[str, list[int]] = {}
        for page in pages:
            owner = next((f"{t.kind} {t.name}" for t in self.trees if page in t.pages), "unreferenced")
            found.setdefault(owner, []).append(page)
        return found

    def tree(self, name: str) -> Tree | None:
        return next((t for t in self.trees if t.name == name), None)


def map_damage(store: PageStore, head: Head, schema: list[tuple[str, str, int]] | None,
               schema_error: str | None = None) -> Damage:
    """Read every chunk of ``head``; walk the b-trees of ``schema`` ((name, kind, root
    page), read through SQL by the caller; None if it could not be read)."""
    read_chunk = functools.lru_cache(maxsize=64)(functools.partial(_chunk, store, head))
    bad: dict[int, str] = {}
    for c in range(-(-head.size // head.chunk_size)):
        try:
            read_chunk(c)
        except (CorruptChunk, DoliteError) as exc:
            bad[c] = str(exc)
    header = b"" if 0 in bad or not head.size else read_chunk(0)[:100]
    page_size = int.from_bytes(header[16:18], "big") if len(header) >= 100 else 4096
    page_size = 65536 if page_size == 1 else page_size
    damage = Damage(page_size or 4096, bad, schema_error=schema_error)
    reserved = header[20] if len(header) >= 100 else 0

    def read_page(pgno: int) -> bytes | None:
        start = (pgno - 1) * damage.page_size
        if start + damage.page_size > head.size:
            return None
        first, last = start // head.chunk_size, (start + damage.page_size - 1) // head.chunk_size
        if any(c in bad for c in range(first, last + 1)):
            return None
        data = b"".join(read_chunk(c) for c in range(first, last + 1))
        offset = start - first * head.chunk_size
        return data[offset:offset + damage.page_size]

    damage.trees = walk(read_page, damage.page_size, reserved, schema or [])
    return damage


def _chunk(store: PageStore, head: Head, chunk: int) -> bytes:
    valid = min(head.chunk_size, head.size - chunk * head.chunk_size)
    data = store.read_chunk(head, chunk, cache=False)[:valid]
    return data + bytes(valid - len(data))
