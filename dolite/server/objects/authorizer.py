"""The SQL authorizer of hosted databases: server-side SQL cannot reach the host.

Refused: ATTACH / DETACH (and so ``VACUUM INTO``), ``load_extension``, transaction
control (a request or a batch *is* the transaction; a session's own savepoints aside, see
runner.py), the server's own savepoint name, pragmas that touch files, the VFS, durability
or process-wide memory, anything that would outlive the request on the shared connection
(TEMP tables, indexes, triggers and views; a pragma set to a value other than the few
stored in the database itself or the REQUEST_SETTINGS, which the runner puts back when
the transaction ends), and, for read-only tokens, anything that writes.
"""

from __future__ import annotations

import apsw

# Pragmas refused whatever their argument.
DENY_ALWAYS = frozenset({
    "temp_store_directory", "data_store_directory", "hard_heap_limit", "soft_heap_limit",
    "writable_schema", "key", "rekey", "hexkey", "hexrekey", "textkey", "textrekey",
    "wal_checkpoint", "mmap_size", "threads",
})
# Pragmas that may be read but not set: they change how the file is written or synced.
DENY_SET = frozenset({
    "journal_mode", "locking_mode", "synchronous", "temp_store", "schema_version",
    "wal_autocheckpoint", "journal_size_limit", "legacy_file_format", "cache_spill",
    "page_size", "max_page_count", "auto_vacuum", "query_only", "read_uncommitted",
    "trusted_schema", "cell_size_check", "cache_size", "busy_timeout", "automatic_index",
    "ignore_check_constraints",
    # SQLite ignores it inside a transaction, and every request runs in one: refused
    # rather than silently ignored.
    "foreign_keys",
})
# Connection settings a request or session may change for its own duration: they take
# effect inside a transaction, and the runner puts them back when it ends.
REQUEST_SETTINGS = ("recursive_triggers", "defer_foreign_keys")
SERVER_SAVEPOINT = "dolite_request"  # the savepoint around each session request (runner.py)

# Pragmas whose argument names what to look at (a query, not a setting).
QUERY_WITH_ARGUMENT = frozenset({
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
})
# Pragmas whose value is stored in the database file (so it is data, not connection state).
STORED_SETTINGS = frozenset({"user_version", "application_id", "optimize", "incremental_vacuum"})

_WRITES = frozenset(getattr(apsw, name) for name in (
    "SQLITE_INSERT", "SQLITE_UPDATE", "SQLITE_DELETE", "SQLITE_CREATE_INDEX", "SQLITE_CREATE_TABLE",
    "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_TRIGGER",
    "SQLITE_CREATE_TEMP_VIEW", "SQLITE_CREATE_TRIGGER", "SQLITE_CREATE_VIEW", "SQLITE_DROP_INDEX",
    "SQLITE_DROP_TABLE", "SQLITE_DROP_TEMP_INDEX", "SQLITE_DROP_TEMP_TABLE", "SQLITE_DROP_TEMP_TRIGGER",
    "SQLITE_DROP_TEMP_VIEW", "SQLITE_DROP_TRIGGER", "SQLITE_DROP_VIEW", "SQLITE_ALTER_TABLE",
    "SQLITE_REINDEX", "SQLITE_ANALYZE", "SQLITE_CREATE_VTABLE", "SQLITE_DROP_VTABLE",
))
_TEMP_OBJECTS = frozenset(getattr(apsw, name) for name in (
    "SQLITE_CREATE_TEMP_TABLE", "SQLITE_CREATE_TEMP_INDEX", "SQLITE_CREATE_TEMP_TRIGGER",
    "SQLITE_CREATE_TEMP_VIEW",
))


class Authorizer:
    """Installed on every hosted connection. ``host_mode`` lets the host run its own
    BEGIN/COMMIT/SAVEPOINT; ``read_only`` is set per request from the token's scope;
    ``allow_vacuum`` per statement for a plain ``VACUUM`` (which attaches a temp db);
    ``allow_savepoint`` for a session request that is one user savepoint statement.
    ``changed`` collects the REQUEST_SETTINGS a statement was allowed to set."""

    def __init__(self):
        self.host_mode = False
        self.read_only = False
        self.allow_vacuum = False
        self.allow_savepoint = False
        self.changed: set[str] = set()
        self.denied: tuple[str, str] | None = None  # (code, message) of the last refusal

    def install(self, raw: apsw.Connection) -> None:
        raw.authorizer = self

    def _deny(self, code: str, message: str) -> int:
        if self.denied is None:
            self.denied = (code, message)
        return apsw.SQLITE_DENY

    def _pragma_setting(self, name: str) -> int:
        if name in REQUEST_SETTINGS:
            self.changed.add(name)
            return apsw.SQLITE_OK
        if name not in STORED_SETTINGS:
            return self._deny("sql_not_allowed", f"PRAGMA {name} with a value would change the connection "
                              "for later requests: not allowed on the server")
        if self.read_only:
            return self._deny("forbidden", "this token may only read: PRAGMA with a value refused")
        return apsw.SQLITE_OK

    def _savepoint(self, name: str | None) -> int:
        if (name or "").lower() == SERVER_SAVEPOINT:
            return self._deny("transaction_control", f"the savepoint name {SERVER_SAVEPOINT!r} is the "
                              "server's own: use another name")
        return apsw.SQLITE_OK

    def __call__(self, op: int, p1, p2, dbname, trigger) -> int:
        if self.host_mode:
            return apsw.SQLITE_OK
        if op == apsw.SQLITE_ATTACH:
            if self.allow_vacuum and p1 == "" and not self.read_only:
                return apsw.SQLITE_OK
            return self._deny("sql_not_allowed", "ATTACH (and VACUUM INTO) is not allowed on the server")
        if op == apsw.SQLITE_DETACH:
            return self._deny("sql_not_allowed", "DETACH is not allowed on the server")
        if op == apsw.SQLITE_FUNCTION and p2 == "load_extension":
            return self._deny("sql_not_allowed", "load_extension is not allowed on the server")
        if op == apsw.SQLITE_TRANSACTION and self.allow_vacuum and not self.read_only:
            return apsw.SQLITE_OK  # VACUUM runs its own transaction
        if op == apsw.SQLITE_SAVEPOINT and self.allow_savepoint:
            return self._savepoint(p2)
        if op in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT):
            return self._deny("transaction_control",
                              "BEGIN/COMMIT/ROLLBACK are implicit on the server: send a batch "
                              "(one transaction) or use a session; in a session, send SAVEPOINT, "
                              "RELEASE and ROLLBACK TO each as a request of its own")
        if op == apsw.SQLITE_PRAGMA:
            name = (p1 or "").lower()
            if name in DENY_ALWAYS or (name in DENY_SET and p2 is not None):
                return self._deny("sql_not_allowed", f"PRAGMA {name} is not allowed on the server")
            if p2 is not None and name not in QUERY_WITH_ARGUMENT:
                return self._pragma_setting(name)
        if op in _TEMP_OBJECTS or (op in _WRITES and dbname == "temp"):
            return self._deny("sql_not_allowed", "TEMP tables, indexes, triggers and views would outlive "
                              "the request on a shared connection: not allowed on the server")
        if self.read_only and op in _WRITES:
            return self._deny("forbidden", "this token may only read this database")
        return apsw.SQLITE_OK
