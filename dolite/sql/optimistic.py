"""Optimistic writers: transactions that take the write lease only to commit, and rebase.

``dolite.connect(name, storage, concurrency="optimistic", on_conflict="abort", retries=3)``

A transaction the driver begins (implicitly, before the first DML, as sqlite3 does) reads
a pinned snapshot and records its row changes with SQLite's session extension. At
:meth:`Connection.commit` it commits if the head has not moved since the pin (the write
lease is held for that commit only). If someone else committed meanwhile, the transaction
is rolled back and *rebased*: its changeset is applied onto the new head, where each row
that another writer changed is decided by the policy, and the commit is tried again, at
most ``retries`` times.

Isolation: snapshot isolation with write-conflict detection on rows. A conflict is a row
we updated or deleted whose columns we changed no longer hold the values we read (someone
else changed them or deleted the row), or a row we inserted whose key someone else
inserted. Write skew is possible: two transactions that each read what the other writes
and write disjoint rows both commit. Lease mode (the default) is serializable.

Policies (``on_conflict``):

- ``"abort"``: raise :class:`ConflictingRows` (a :class:`dolite.Conflict`) listing every
  conflicting row; nothing of the transaction is applied (the first committer wins).
- ``"theirs"``: keep the stored row, drop our change to it.
- ``"ours"``: our change wins: the columns we set take our values, our deletes delete, our
  inserts replace. An update of a row someone else deleted cannot be applied (our change
  holds only the columns we set) and aborts, as does a constraint violation.
- a callable ``(RowConflict) -> "ours" | "theirs" | "abort" | row``: decides each row; a
  row is stored as the merged result: a full tuple in column order, or a dict of column
  values over the stored row (over our values where the stored row is gone).

Deleting a row someone else deleted is not a conflict. Changes to tables without a
primary key, and schema changes, are refused (NotSupportedError, at commit, nothing
stored): a changeset cannot name their rows. Transactions begun by an explicit BEGIN
statement, and autocommit statements, are not recorded: they commit only if nobody
committed meanwhile, else raise Conflict.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

import apsw

from dolite.errors import Conflict, LeaseHeld, NotSupportedError, ProgrammingError

Decision = Union[str, dict, tuple, list]
Policy = Union[str, Callable[["RowConflict"], Decision]]
POLICIES = ("abort", "theirs", "ours")
_REASONS = {apsw.SQLITE_CHANGESET_DATA: "changed", apsw.SQLITE_CHANGESET_NOTFOUND: "deleted",
            apsw.SQLITE_CHANGESET_CONFLICT: "exists", apsw.SQLITE_CHANGESET_CONSTRAINT: "constraint",
            apsw.SQLITE_CHANGESET_FOREIGN_KEY: "foreign_key"}
OMIT, REPLACE, ABORT = (apsw.SQLITE_CHANGESET_OMIT, apsw.SQLITE_CHANGESET_REPLACE,
                        apsw.SQLITE_CHANGESET_ABORT)

_metrics: Counter = Counter()
_metrics_lock = threading.Lock()


def metrics() -> dict[str, int]:
    """This process's optimistic-commit counters: ``commits``, ``rebases``, ``gave_up``,
    ``conflicts.<policy>`` (rows decided by each policy) and ``aborted.<policy>``."""
    with _metrics_lock:
        return dict(_metrics)


def _count(stats: Counter, **increments: int) -> None:
    with _metrics_lock:
        for key, n in increments.items():
            key = key.replace("__", ".")
            stats[key] += n
            _metrics[key] += n


@dataclass(frozen=True)
class RowConflict:
    """One row our changes could not be applied to as recorded.

    ``kind``: our operation (``insert``, ``update``, ``delete``; ``foreign_key`` for the
    rebase's remaining foreign key violations). ``reason``: ``changed`` (the columns we
    changed no longer hold what we read), ``deleted`` (the row is gone), ``exists`` (a
    row with our key was inserted), ``constraint``, ``foreign_key``. ``stored``: the row
    as stored now (None if absent or unknown); ``ours``: the values we wrote (for an
    update, the key and the columns we set; None for a delete)."""

    table: str
    key: tuple
    kind: str
    reason: str
    stored: dict | None
    ours: dict | None


class ConflictingRows(Conflict):
    """A rebase the policy aborted: ``conflicts`` lists every conflicting row. Nothing of
    the transaction was applied."""

    def __init__(self, message: str, conflicts: list[RowConflict]):
        super().__init__(message)
        self.conflicts = conflicts


def check_policy(on_conflict: Any, retries: Any) -> None:
    """Refuse a policy or retry count that is not one of the documented forms."""
    if not (callable(on_conflict) or on_conflict in POLICIES):
        raise ProgrammingError(f"on_conflict must be one of {POLICIES} or a callable, not {on_conflict!r}")
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise ProgrammingError(f"retries must be an integer >= 0, not {retries!r}")


def policy_name(policy: Policy) -> str:
    return policy if isinstance(policy, str) else "callable"


# -- applying a changeset under a policy ---------------------------------------------------


def quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def table_columns(raw: apsw.Connection, table: str) -> list[tuple]:
    """(name, type, notnull, pk) of each column of ``table``, in order."""
    return [(r[1], r[2], r[3], r[5]) for r in raw.execute(f"PRAGMA main.table_info({quoted(table)})")]


def changed_tables(changeset: bytes) -> list[str]:
    """The tables ``changeset`` changes, in order of first appearance."""
    return list(dict.fromkeys(change.name for change in apsw.Changeset.iter(changeset)))


@dataclass
class _Rebase:
    """The state of one application of a changeset under a policy."""

    policy: Policy
    columns: dict[str, list[str]]
    found: list[RowConflict] = field(default_factory=list)
    aborting: list[RowConflict] = field(default_factory=list)
    merged: list[tuple[str, dict]] = field(default_factory=list)
    error: BaseException | None = None

    def handler(self, reason: int, change: apsw.TableChange) -> int:
        try:
            return self._decide(reason, change)
        except BaseException as exc:  # noqa: BLE001 - re-raised once apply returns
            self.error = exc
            return ABORT

    def _decide(self, reason: int, change: apsw.TableChange) -> int:
        if reason == apsw.SQLITE_CHANGESET_NOTFOUND and change.opcode == apsw.SQLITE_DELETE:
            return OMIT  # deleted on both sides: the outcome we wanted
        conflict = self._describe(reason, change)
        self.found.append(conflict)
        decision = self.policy(conflict) if callable(self.policy) else self.policy
        if isinstance(decision, (dict, tuple, list)) and reason != apsw.SQLITE_CHANGESET_FOREIGN_KEY:
            self.merged.append((conflict.table, self._merged_row(conflict, decision)))
            return OMIT
        if decision == "theirs":
            return OMIT
        if decision == "ours" and reason in (apsw.SQLITE_CHANGESET_DATA, apsw.SQLITE_CHANGESET_CONFLICT):
            return REPLACE
        if decision not in POLICIES:
            raise ProgrammingError(f"on_conflict returned {decision!r}: expected 'ours', 'theirs', "
                                   "'abort' or a row (dict or tuple)")
        self.aborting.append(conflict)  # "abort", or "ours" where it cannot apply
        return OMIT

    def _describe(self, reason: int, change: apsw.TableChange) -> RowConflict:
        if reason == apsw.SQLITE_CHANGESET_FOREIGN_KEY:
            return RowConflict("", (), "foreign_key", "foreign_key", None,
                               {"violations": change.fk_conflicts})
        names = self.columns[change.name]
        source = change.old if change.old is not None else change.new
        key = tuple(source[i] for i in sorted(change.pk_columns))
        stored = dict(zip(names, change.conflict)) if change.conflict is not None else None
        ours = None
        if change.new is not None:
            ours = {names[i]: v for i, v in enumerate(change.new) if v is not apsw.no_change}
            ours = {**{names[i]: source[i] for i in sorted(change.pk_columns)}, **ours}
        return RowConflict(change.name, key, change.op.lower(), _REASONS[reason], stored, ours)

    def _merged_row(self, conflict: RowConflict, row: dict | tuple | list) -> dict:
        names = self.columns[conflict.table]
        if isinstance(row, dict):
            unknown = set(row) - set(names)
            if unknown:
                raise ProgrammingError(f"merged row for {conflict.table}: no column(s) {sorted(unknown)}")
            # over the stored row, or where it is gone, over ours (which holds the key)
            return {**(conflict.stored if conflict.stored is not None else conflict.ours or {}), **row}
        if len(row) != len(names):
            raise ProgrammingError(f"merged row for {conflict.table} has {len(row)} values; "
                                   f"the table has {len(names)} columns")
        return dict(zip(names, row))


def _check_shapes(changeset: bytes, shapes: dict[str, list[tuple]]) -> None:
    """SQLite skips, without an error, the changes to a table whose column count or key
    differs from the changeset's: refuse the whole changeset instead."""
    checked = set()
    for change in apsw.Changeset.iter(changeset):
        if change.name in checked:
            continue
        checked.add(change.name)
        shape = shapes[change.name]
        if len(shape) != change.column_count or \
                {i for i, c in enumerate(shape) if c[3]} != set(change.pk_columns):
            raise ConflictingRows(f"table {change.name!r} does not have the shape (columns, "
                                  "primary key) these changes were made on; nothing was stored", [])


def apply_changeset(raw: apsw.Connection, changeset: bytes, policy: Policy) -> list[RowConflict]:
    """Apply ``changeset`` in ``raw``'s open transaction, each conflicting row decided by
    ``policy``. Returns the conflicts decided; raises :class:`ConflictingRows` when the
    policy aborts (the caller rolls the transaction back: part of it may be applied)."""
    shapes = {t: table_columns(raw, t) for t in changed_tables(changeset)}
    _check_shapes(changeset, shapes)
    rebase = _Rebase(policy, {t: [c[0] for c in shape] for t, shape in shapes.items()})
    try:
        apsw.Changeset.apply(changeset, raw, conflict=rebase.handler)
    except apsw.AbortError:
        if rebase.error is None:
            raise
    if rebase.error is not None:
        raise rebase.error
    if rebase.aborting:
        rows = ", ".join(f"{c.table}{list(c.key)} ({c.reason})" for c in rebase.aborting[:5])
        more = f" and {len(rebase.aborting) - 5} more" if len(rebase.aborting) > 5 else ""
        raise ConflictingRows(f"{len(rebase.found)} conflicting row(s), not applied "
                              f"(on_conflict={policy_name(policy)!r}): {rows}{more}", rebase.found)
    for table, row in rebase.merged:
        names = ", ".join(quoted(n) for n in row)
        marks = ", ".join("?" * len(row))
        raw.execute(f"INSERT OR REPLACE INTO main.{quoted(table)} ({names}) VALUES ({marks})",
                    list(row.values()))
    return rebase.found


# -- one connection's optimistic transactions ----------------------------------------------

_HOOK_ID = "dolite.optimistic"


class Optimistic:
    """The optimistic side of one :class:`dolite.sql.dbapi.Connection`: the recording of
    the transaction the driver began, and commit-or-rebase. ``stats`` counts this
    connection's commits, rebases and conflicts (as :func:`metrics` does per process)."""

    def __init__(self, on_conflict: Policy = "abort", retries: int = 3):
        check_policy(on_conflict, retries)
        self.policy = on_conflict
        self.retries = retries
        self.stats: Counter = Counter()
        self._session: apsw.Session | None = None
        self._live = False  # the recorded transaction is still open
        self._touched: list[str] = []
        self._schema_version: int | None = None

    def began(self, raw: apsw.Connection) -> None:
        """Called right after the driver's BEGIN: pin the snapshot and start recording. The
        recording ends with the transaction, however it ends (commit and rollback hooks)."""
        self.ended()
        self._schema_version = raw.execute("PRAGMA schema_version").fetchall()[0][0]
        raw.set_commit_hook(self._transaction_ended, id=_HOOK_ID)
        raw.set_rollback_hook(self._transaction_ended, id=_HOOK_ID)
        session = apsw.Session(raw, "main")
        self._touched = []
        session.table_filter(self._record_table)
        session.attach()
        self._session, self._live = session, True

    def _record_table(self, table: str) -> bool:
        self._touched.append(table)  # checked at commit (no SQL may run in this callback)
        return True

    def _transaction_ended(self) -> bool:
        self._live = False  # (the session is closed later, outside SQLite's callback)
        return False  # a commit hook's "go ahead"

    def ended(self) -> None:
        """Stop recording (the transaction ended)."""
        session, self._session, self._live = self._session, None, False
        if session is not None:
            session.close()

    def commit(self, conn) -> None:
        """Commit ``conn``'s open transaction; rebase it if someone else committed first.
        On any failure nothing of it is stored and no transaction is left open."""
        raw = conn.raw
        if not self._live:  # not begun by the driver: nothing to rebase with
            self.ended()
            with conn._errors():
                raw.execute("COMMIT")
            return
        try:
            with conn._errors():
                changeset, shapes = self._recorded(raw)
                self.ended()
                self._commit_or_rebase(conn, changeset, shapes)
        except BaseException:
            self.ended()
            rollback_quietly(raw)
            raise

    def _recorded(self, raw: apsw.Connection) -> tuple[bytes, dict[str, list[tuple]]]:
        """The transaction's changeset and the shape of each table it changed; refuse what
        a changeset cannot carry."""
        if raw.execute("PRAGMA schema_version").fetchall()[0][0] != self._schema_version:
            raise NotSupportedError("schema changes are not supported with concurrency='optimistic' "
                                    "(use a lease-mode connection for them); nothing was stored")
        shapes = {t: table_columns(raw, t) for t in dict.fromkeys(self._touched)}
        keyless = sorted(t for t, shape in shapes.items() if not any(c[3] for c in shape))
        if keyless:
            raise NotSupportedError(f"table(s) {keyless} have no primary key: their rows cannot be "
                                    "rebased, so concurrency='optimistic' cannot change them; "
                                    "nothing was stored")
        return self._session.changeset(), shapes

    def _commit_or_rebase(self, conn, changeset: bytes, shapes: dict[str, list[tuple]]) -> None:
        raw, name = conn.raw, policy_name(self.policy)
        last: Conflict | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                _count(self.stats, rebases=1)
                found = self._rebase(raw, changeset, shapes)
                _count(self.stats, **{f"conflicts__{name}": len(found)})
            try:
                raw.execute("COMMIT")
            except apsw.Error as exc:
                error = conn._failed(exc)
                if not isinstance(error, Conflict) or isinstance(error, LeaseHeld):
                    raise error from exc
                last = error  # someone committed since our pin: rebase onto their head
                rollback_quietly(raw)
                continue
            _count(self.stats, commits=1)
            return
        _count(self.stats, gave_up=1)
        raise Conflict(f"{conn.name}: still conflicting after {self.retries} rebase(s) "
                       "(other writers keep committing first); nothing was stored") from last

    def _rebase(self, raw: apsw.Connection, changeset: bytes,
                shapes: dict[str, list[tuple]]) -> list[RowConflict]:
        raw.execute("BEGIN")
        for table, shape in shapes.items():
            if table_columns(raw, table) != shape:
                raise ConflictingRows(f"table {table!r} changed shape since this transaction "
                                      "began: it cannot be rebased; nothing was stored", [])
        try:
            return apply_changeset(raw, changeset, self.policy)
        except ConflictingRows:
            _count(self.stats, **{f"aborted__{policy_name(self.policy)}": 1})
            raise


def rollback_quietly(raw: apsw.Connection | None) -> None:
    if raw is not None and raw.in_transaction:
        try:
            raw.execute("ROLLBACK")
        except apsw.Error:
            pass  # the connection is unusable anyway; its next use reports why
