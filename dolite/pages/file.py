"""A byte-addressed view of one database file for one transaction at a time.

``begin`` pins the current head; reads see the pinned version plus this transaction's own
writes; ``commit`` hands the dirty chunks to the page store. Bytes past the file size are
always zero, whatever older chunk versions hold, so a file that shrinks and grows again
never shows stale data. A transaction whose dirty chunks pass ``SPILL_BYTES`` writes them
to storage early, as uncommitted chunk versions (:meth:`PageStore.spill`), so its memory
stays bounded; they become part of the version its commit makes, or debris on rollback.
"""

from __future__ import annotations

from dolite.pages.format import Head, chunk_key, decode_chunk
from dolite.pages.store import PageStore

SPILL_BYTES = 16 << 20  # dirty bytes a transaction holds in memory before spilling


class PagedFile:
    """File semantics (read, write, truncate, size) over a :class:`PageStore`."""

    def __init__(self, store: PageStore):
        self.store = store
        self.head: Head | None = None
        self.size = 0
        self.low = 0  # lowest size this transaction truncated to: zeros past it
        self.dirty: dict[int, bytes | bytearray] = {}
        self.written = False  # any write (not just truncation) since the last commit
        # After a failed commit SQLite rolls back by writing the journal's pages back and
        # syncing. Storage already holds the committed state (the failed commit may even
        # have landed, its reply lost), so a commit that only restores it stores nothing.
        self.after_failure = False
        # File offsets (in chunk 0) that the layer above rewrites on every read (SQLite's
        # change counter, see sql/vfs.py): never a reason to think a write changed anything.
        self.volatile: tuple[range, ...] = ()
        self.spilled: set[int] = set()  # chunks written early for the version we will commit
        self.spilled_at: int | None = None  # the store's cleanup count when we first spilled

    # -- transaction boundaries -----------------------------------------------------

    def begin(self) -> None:
        """Pin the newest committed version for reading."""
        self._set_head(self.store.pinned(), pinned=True)

    def refresh_needed(self) -> bool:
        """True if someone committed since our pin (our writes would then conflict)."""
        return self.head is not None and self.store.current_head().version != self.head.version

    def end(self) -> None:
        """Unpin; unsaved writes are discarded."""
        self.dirty.clear()
        self._forget_spilled()
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
        self._forget_spilled()
        if self.head is not None:
            self.size = self.low = self.head.size

    def _forget_spilled(self) -> None:
        if self.spilled:
            self.store.forget_spilled()
        self.spilled.clear()
        self.spilled_at = None

    @property
    def pending(self) -> bool:
        return bool(self.dirty or self.spilled) or (self.head is not None and self.size != self.head.size)

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
        if 0 in self.dirty and self.volatile and self._masked(0, self.dirty[0]) == self._masked(0, self._base_chunk(0)):
            del self.dirty[0]  # only SQLite's change counter moved: the VFS shows its own
        size, chunk_size = self.size, head.chunk_size
        try:
            # Chunks between the old and new end of file that were not written must be
            # stored explicitly (zeros) so an older version can never resurface there.
            for c in range(self.low // chunk_size, -(-size // chunk_size)):
                if c not in self.dirty and c not in self.spilled:
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
                spilled = [c for c in self.spilled if c < last]
                new = self.store.commit(head, chunks, size, own_pins=1, spilled=spilled,
                                        spilled_at=self.spilled_at)  # our pin of head
        except BaseException:
            self.discard()
            self.after_failure = True
            raise
        self.dirty.clear()
        self.spilled.clear()
        self.spilled_at = None
        self.written = self.after_failure = False
        self._set_head(new)

    def _spill_if_big(self) -> None:
        """Write the dirty chunks to storage early once they pass ``SPILL_BYTES`` (not in a
        two-phase commit, whose prepare writes everything at once)."""
        if len(self.dirty) * self.head.chunk_size < SPILL_BYTES or self.store.stage is not None:
            return
        at = self.store.spill(self.head, self.dirty, part=len(self.spilled) + 1)
        if self.spilled_at is None:
            self.spilled_at = at
        self.spilled.update(self.dirty)
        self.dirty.clear()

    def _spilled_chunk(self, c: int) -> bytearray:
        """Chunk ``c`` as this transaction spilled it."""
        version = self.head.version + 1
        key = chunk_key(c, version)
        return bytearray(decode_chunk(self.store.storage.get([key])[key], c, version, self.store.name))

    def _restores_base(self) -> bool:
        """True if this transaction's writes only put back what the pinned version holds."""
        return self.size == self.head.size and all(
            self._masked(c, data) == self._masked(c, self._base_chunk(c)) for c, data in self.dirty.items())

    def _masked(self, c: int, data) -> bytes:
        if c != 0 or not self.volatile:
            return bytes(data)
        out = bytearray(data)
        for span in self.volatile:
            out[span.start:span.stop] = bytes(len(span))
        return bytes(out)

    def _set_head(self, head: Head, pinned: bool = False) -> None:
        if not pinned:
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
            if (first + 1) * cs <= self.low and first not in self.spilled:
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
            if within == 0 and take == cs:  # kept as the immutable bytes it came in
                whole = take == len(data) and type(data) is bytes
                self.dirty[c] = data if whole else bytes(data[pos - offset: pos - offset + cs])
            else:
                self._writable(c)[within: within + take] = data[pos - offset: pos - offset + take]
            pos += take
        self.size = max(self.size, end)
        self._spill_if_big()

    def truncate(self, size: int) -> None:
        if size >= self.size:
            self.size = size if size == self.size else self._grow(size)
            return
        cs = self.head.chunk_size
        for c in [c for c in self.dirty if c * cs >= size]:
            del self.dirty[c]
        self.spilled = {c for c in self.spilled if c * cs < size}
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
        self._writable(c)[within:] = bytes(cs - within)

    def _writable(self, c: int) -> bytearray:
        """Dirty chunk ``c`` as a bytearray to write into (whole-chunk writes keep bytes)."""
        chunk = self.dirty.get(c)
        if type(chunk) is not bytearray:
            chunk = self.dirty[c] = self._base_chunk(c) if chunk is None else bytearray(chunk)
        return chunk

    def _chunk(self, c: int, head: Head):
        data = self.dirty.get(c)
        if data is not None:
            return data
        return self._base_chunk(c, head)

    def _base_chunk(self, c: int, head: Head | None = None) -> bytearray:
        """Chunk ``c`` as this transaction last stored it (spilled), else as committed in
        our pinned version, zero past its file size."""
        if c in self.spilled and (head is None or head is self.head):
            return self._spilled_chunk(c)
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
