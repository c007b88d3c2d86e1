"""A byte-addressed view of one database file for one transaction at a time.

``begin`` pins the current head; reads see the pinned version plus this transaction's own
writes; ``commit`` hands the dirty chunks to the page store. Bytes past the file size are
always zero, whatever older chunk versions hold, so a file that shrinks and grows again
never shows stale data.
"""

from __future__ import annotations

from dolite.pages.format import Head
from dolite.pages.store import PageStore


class PagedFile:
    """File semantics (read, write, truncate, size) over a :class:`PageStore`."""

    def __init__(self, store: PageStore):
        self.store = store
        self.head: Head | None = None
        self.size = 0
        self.low = 0  # lowest size this transaction truncated to: zeros past it
        self.dirty: dict[int, bytearray] = {}
        self.written = False  # any write (not just truncation) since the last commit
        # After a failed commit SQLite rolls back by writing the journal's pages back and
        # syncing. Storage already holds the committed state (the failed commit may even
        # have landed, its reply lost), so a commit that only restores it stores nothing.
        self.after_failure = False

    # -- transaction boundaries -----------------------------------------------------

    def begin(self) -> None:
        """Pin the newest committed version for reading."""
        self._set_head(self.store.current_head())

    def refresh_needed(self) -> bool:
        """True if someone committed since our pin (our writes would then conflict)."""
        return self.head is not None and self.store.current_head().version != self.head.version

    def end(self) -> None:
        """Unpin; unsaved writes are discarded."""
        self.dirty.clear()
        self.after_failure = False
        if self.head is not None:
            self.store.unpin(self.head)
        self.head = None

    @property
    def only_shrunk(self) -> bool:
        """True if the sole change since the last commit is a truncation."""
        return not self.written and self.head is not None and self.size < self.head.size

    def discard(self) -> None:
        """Forget this transaction's writes; keep the pin."""
        self.written = False
        self.dirty.clear()
        if self.head is not None:
            self.size = self.low = self.head.size

    @property
    def pending(self) -> bool:
        return bool(self.dirty) or (self.head is not None and self.size != self.head.size)

    def commit(self) -> None:
        """Make this transaction's writes durable as one new version (or raise and keep
        nothing of them)."""
        if not self.pending:
            return
        head = self.head
        assert head is not None
        if self.after_failure and self._restores_base():
            self.discard()
            return
        size, chunk_size = self.size, head.chunk_size
        try:
            # Chunks between the old and new end of file that were not written must be
            # stored explicitly (zeros) so an older version can never resurface there.
            for c in range(self.low // chunk_size, -(-size // chunk_size)):
                if c not in self.dirty:
                    self.dirty[c] = self._base_chunk(c)
            last = -(-size // chunk_size)
            chunks = {c: bytes(data) for c, data in self.dirty.items() if c < last}
            if size % chunk_size and (last - 1) in chunks:
                chunks[last - 1] = chunks[last - 1][: size % chunk_size]
            stage = self.store.stage  # a two-phase commit participant: stop at "prepared"
            if stage is not None:
                stage.prepare(head, chunks, size)  # (pages/twophase.py; the head stays)
                new = head
            else:
                new = self.store.commit(head, chunks, size)
        except BaseException:
            self.discard()
            self.after_failure = True
            raise
        self.dirty.clear()
        self.written = self.after_failure = False
        self._set_head(new)

    def _restores_base(self) -> bool:
        """True if this transaction's writes only put back what the pinned version holds."""
        return self.size == self.head.size and all(
            bytes(data) == bytes(self._base_chunk(c)) for c, data in self.dirty.items())

    def _set_head(self, head: Head) -> None:
        self.store.pin(head)
        if self.head is not None:
            self.store.unpin(self.head)
        self.head = head
        self.size = self.low = head.size

    # -- file operations ------------------------------------------------------------

    def read(self, amount: int, offset: int) -> bytes:
        """Up to ``amount`` bytes at ``offset``; short at end of file."""
        head = self.head or self.store.current_head()
        end = min(offset + amount, self.size)
        if offset >= end:
            return b""
        cs = head.chunk_size
        first = offset // cs
        if offset % cs == 0 and end - offset == cs:  # one whole chunk: the common case
            data = self.dirty.get(first)
            if data is not None:
                return bytes(data)
            if (first + 1) * cs <= self.low:
                data = self.store.read_chunk(head, first)
                if len(data) == cs:
                    return data
            return bytes(self._base_chunk(first, head))
        out = bytearray()
        for c in range(first, (end - 1) // cs + 1):
            data = self._chunk(c, head)
            lo = max(offset - c * cs, 0)
            hi = min(end - c * cs, cs)
            out += data[lo:hi]
        return bytes(out)

    def write(self, data: bytes, offset: int) -> None:
        head = self.head
        assert head is not None, "write outside a transaction"
        cs = head.chunk_size
        end = offset + len(data)
        self.written = True
        if offset > self.size:
            # A write past the end leaves a hole of zeros; later reads must see them.
            self._zero_tail(self.size)
        pos = offset
        while pos < end:
            c, within = divmod(pos, cs)
            take = min(cs - within, end - pos)
            if within == 0 and take == cs:
                self.dirty[c] = bytearray(data[pos - offset: pos - offset + cs])
            else:
                chunk = self.dirty.get(c)
                if chunk is None:
                    chunk = self.dirty[c] = self._base_chunk(c)
                chunk[within: within + take] = data[pos - offset: pos - offset + take]
            pos += take
        self.size = max(self.size, end)

    def truncate(self, size: int) -> None:
        if size >= self.size:
            self.size = size if size == self.size else self._grow(size)
            return
        cs = self.head.chunk_size
        for c in [c for c in self.dirty if c * cs >= size]:
            del self.dirty[c]
        self._zero_tail(size)
        self.size = size
        self.low = min(self.low, size)

    # -- helpers ----------------------------------------------------------------------

    def _grow(self, size: int) -> int:
        self._zero_tail(self.size)
        return size

    def _zero_tail(self, size: int) -> None:
        """Zero the bytes past ``size`` in the chunk that holds it."""
        cs = self.head.chunk_size
        c, within = divmod(size, cs)
        if within == 0:
            return
        chunk = self.dirty.get(c)
        if chunk is None:
            chunk = self.dirty[c] = self._base_chunk(c)
        chunk[within:] = bytes(cs - within)

    def _chunk(self, c: int, head: Head):
        data = self.dirty.get(c)
        if data is not None:
            return data
        return self._base_chunk(c, head)

    def _base_chunk(self, c: int, head: Head | None = None) -> bytearray:
        """Chunk ``c`` as committed in our pinned version, zero past its file size."""
        head = head or self.head
        cs = head.chunk_size
        low = self.low if head is self.head else head.size
        if c * cs >= low:
            return bytearray(cs)
        data = self.store.read_chunk(head, c)
        valid = min(cs, low - c * cs)
        chunk = bytearray(data[:valid])
        chunk += bytes(cs - len(chunk))
        return chunk
