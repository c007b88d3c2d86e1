"""Incremental, content-addressed, resumable push of one database to a backup target.

The source is the database's commit log: each committed version's record names the
chunks it wrote. A push

1. reads the target's newest manifest (where the last push, finished or not, got to) and
   the set of chunk hashes already stored;
2. plans the versions to copy: every version after that one, from the log; or, on the
   first push, or when a version to copy is no longer in the log (GC dropped it before it
   was copied), a full snapshot of the current version, which the result says and why;
3. for each version in order, uploads the chunks it changed that the target lacks, then
   its manifest. A manifest is written only after its chunks, so an interrupted push
   leaves only complete versions behind and the next push resumes after the newest one
   (chunks uploaded meanwhile are found by hash and not sent again);
4. sets the GC hold ``backup:<target url>`` at the newest copied version, so GC keeps the
   versions the next push will need (for at most ``holds.MAX_HOLD_SECONDS``).

Steps 1-3 run holding the database's backup lock in the target (lock.py), so no prune
can delete a chunk that step 1 found stored and step 3 names, and two pushes of one
database never interleave. Another holder means BackupLocked and nothing written; a push
that lost its lease raises BackupLockLost before its next manifest.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from dolite.backup.errors import BackupError
from dolite.backup.lock import Lease, locked
from dolite.backup.manifest import Manifest, apply, chunk_key, digest, full_every, listing, resolve
from dolite.backup.target import BackupTarget
from dolite.errors import SnapshotExpired
from dolite.pages import Head, PageStore
from dolite.pages.holds import set_hold
from dolite.pages.in_place import again_if_overwritten
from dolite.pages.log import read_records

Progress = Callable[[int, int], None]  # (chunks done, chunks in the plan)


@dataclass
class PushResult:
    """What one push copied."""

    name: str
    target: str  # the target's URL, without credentials
    version: int  # the newest version now in the backup
    versions: list[int] = field(default_factory=list)  # versions whose manifests this push wrote
    chunks_uploaded: int = 0
    bytes_uploaded: int = 0
    chunks_present: int = 0  # changed chunks the target already held (same hash)
    full_snapshot: bool = False
    reason: str | None = None  # why a full snapshot was taken

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def holder(target: BackupTarget) -> str:
    return f"backup:{target.url}"


def push_store(store: PageStore, target: BackupTarget, progress: Progress | None = None) -> PushResult:
    """Copy every committed version of ``store`` not yet in ``target``; see the module doc.
    A full copy that a writer of another store overwrote in place meanwhile (retention 0)
    starts again from the newest head (``in_place.again_if_overwritten``)."""

    def push_newest() -> PushResult:
        head = store.pinned(store.read_head)
        try:
            with locked(target, store.name, "push") as lease:
                return _Pusher(store, target, head, lease, progress).run()
        finally:
            store.unpin(head)

    result = again_if_overwritten(push_newest)
    set_hold(store.storage, holder(target), result.version)
    return result


class _Pusher:
    def __init__(self, store: PageStore, target: BackupTarget, head: Head, lease: Lease,
                 progress: Progress | None):
        self.store, self.target, self.head, self.db, self.lease = store, target, head, store.name, lease
        self.progress = progress or (lambda done, total: None)
        self.stored = {key.rpartition("/")[2] for key in target.list(chunk_key(self.db, ""))}
        self.result = PushResult(name=self.db, target=target.url, version=head.version)

    def run(self) -> PushResult:
        known = listing(self.target, self.db)
        if not known:
            return self._full("first push to this target")
        last, pages = resolve(self.target, self.db, max(known), known)
        if last.incarnation != self.head.id or last.version > self.head.version:
            raise BackupError(
                f"{self.db}: the backup at {self.target.url} is of an earlier incarnation of this "
                "database (it was dropped and created again since): push to another target or prefix")
        if last.version == self.head.version:
            return self.result
        records = read_records(self.store.storage, self.db, self.head, last.version + 1, self.head.version + 1)
        wanted = range(last.version + 1, self.head.version + 1)
        gone = [v for v in wanted if v not in records]
        if gone:
            return self._full(f"versions {gone[0]}..{gone[-1]} were garbage-collected before they were "
                              f"backed up (none kept since v{last.version})")
        try:
            self._incremental(last, pages, [records[v] for v in wanted])
        except SnapshotExpired as exc:
            return self._full(f"a version was garbage-collected while being backed up ({exc})")
        return self.result

    def _incremental(self, last: Manifest, pages: list[str], records) -> None:
        plan = []
        size = last.size
        for record in records:
            plan.append((record, _changed(record.chunks, size, record.size, self.head.chunk_size)))
            size = record.size
        total, done = sum(len(chunks) for _, chunks in plan), 0
        for record, chunks in plan:
            # what PageStore.version_head reads, from the record already in hand
            at = dataclasses.replace(self.head, version=record.version, size=record.size, time=record.time)
            changes = {}
            for c in chunks:
                changes[c] = self._upload(self.store.chunk_as_of(at, c))
                done += 1
                self.progress(done, total)
            delta = Manifest(self.db, record.version, record.time, record.size, at.chunk_size, at.id,
                             changes, base=last.version, depth=last.depth + 1)
            pages = apply(pages, delta)
            last = delta if delta.depth < full_every(len(pages)) else dataclasses.replace(
                delta, chunks=dict(enumerate(pages)), base=None, depth=0)
            self._write(last)

    def _full(self, reason: str) -> PushResult:
        head, count = self.head, self.head.chunk_count
        self.result.full_snapshot, self.result.reason = True, reason
        chunks = {}
        for c in range(count):
            chunks[c] = self._upload(self.store.chunk_as_of(head, c))
            self.progress(c + 1, count)
        self._write(Manifest(self.db, head.version, head.time, head.size, head.chunk_size, head.id, chunks))
        return self.result

    def _upload(self, data: bytes) -> str:
        h = digest(data)
        if h in self.stored:
            self.result.chunks_present += 1
        else:
            self.lease.refresh()
            self.target.put_object(chunk_key(self.db, h), data)
            self.stored.add(h)
            self.result.chunks_uploaded += 1
            self.result.bytes_uploaded += len(data)
        return h

    def _write(self, manifest: Manifest) -> None:
        self.lease.check()  # a manifest names chunks found stored: only while no prune can run
        self.target.put_object(manifest.key, manifest.encode())
        self.result.versions.append(manifest.version)
        self.result.version = manifest.version


def _changed(written: list[int], old_size: int, size: int, chunk_size: int) -> list[int]:
    """Chunks whose valid bytes a commit may have changed: those it wrote, plus the last
    chunk of the old and new file when the size changed (its valid part grew or shrank)."""
    count = -(-size // chunk_size)
    changed = set(written)
    if size != old_size:
        changed |= {-(-old_size // chunk_size) - 1, count - 1}
    return sorted(c for c in changed if 0 <= c < count)
