"""A lean sqllogictest runner for any PEP 249 (DB-API) connection.

Follows the reference implementation (sqllogictest.c + slt_sqlite.c, D. Richard Hipp)
in verify mode, with the database engine name ``sqlite``:

* A script is a sequence of records separated by blank lines.  Lines whose first
  character is ``#`` are comments and are skipped everywhere (even inside a record);
  trailing ``\\r`` is removed and an all-whitespace line counts as blank.
* ``skipif <db>`` / ``onlyif <db>`` lines may precede a record (compared
  case-insensitively with the engine name).  ``halt``, ``hash-threshold N``,
  ``statement ok|error``, ``query <types> [<sort> [<label>]]`` are the record kinds;
  an unknown record kind is an error that stops the file, as in the reference.
* Query values are rendered the way the reference SQLite driver renders them:
  ``NULL`` for NULL, and otherwise by the column's type letter, *whatever the value's
  storage class*:

  - ``I``: ``sqlite3_column_int`` then ``%d``: reals are truncated toward zero
    (clamped to int64), text is parsed for a leading integer (``'12abc'`` -> 12,
    ``'x'`` -> 0), and the int64 is then cut to its low 32 bits (signed).
  - ``R``: ``sqlite3_column_double`` then SQLite's ``%.3f``: integers become reals,
    text is parsed for a leading real, and rounding is half-up on the shortest
    decimal form of the double (SQLite prints ``0.0625`` as ``0.063`` and ``2.0005``
    as ``2.001``; C printf would give ``0.062`` and ``2.000``); ``-0.0`` prints as
    ``0.000``, infinities as ``Inf``/``-Inf``.
  - ``T``: ``sqlite3_column_text``: ``(empty)`` for an empty string, the text is cut at
    its first NUL, and every *byte* of its UTF-8 form outside ``' '..'~'`` becomes
    ``@`` (so a two-byte character gives ``@@``).  Integers print in decimal, reals
    as SQLite's classic ``%!.15g`` (``1.0``, ``1.0e+20``, ``0.333333333333333``).

* Sorting: ``nosort`` (or no sort word), ``rowsort`` (rows compared column by column
  as *strings*, i.e. on their rendered form: ``'10' < '9'``), ``valuesort`` (all values
  sorted individually).
* Hashing: the default hash threshold is **8** (``DEFAULT_HASH_THRESHOLD`` in
  sqllogictest.c); ``hash-threshold 0`` disables hashing.  A result with more values
  than the threshold is expected as ``N values hashing to <md5>``, the md5 of every
  value followed by ``\\n``.  A query with a label (4th token, first 20 characters
  significant) always has its hash computed, and every query with the same label in
  the file must produce the same hash -- also queries skipped by skipif/onlyif, whose
  *expected* text is hashed instead (as the reference does in verify mode).  Under the
  threshold, labelled results are still listed value by value.

Two deliberate differences from the reference, both stricter: the number of expected
values must equal the number of values returned (the reference stops comparing at the
shorter of the two), and a ``query`` without a ``----`` line expects no rows.

Statements run "autocommit style": each statement record is followed by
``conn.commit()`` (also after a failed one, so that what the engine kept -- e.g. the
first rows of an ``INSERT OR FAIL`` -- is committed, as in SQLite's autocommit mode).
A ``statement error`` record passes when execute (or fetching) raises the connection's
``Error`` class (``conn.Error`` when the driver provides it, else ``Exception``); any
other exception is reported as a failure.

Command line: stdlib :mod:`sqlite3` in memory, or through ``dolite.connect`` on any storage
(each file on its own database, dropped afterwards)::

    python -m dolite.testing.sqllogictest FILE_OR_DIR...
    python -m dolite.testing.sqllogictest --storage do+http://127.0.0.1:8787 FILE_OR_DIR...
"""

from dolite.testing.sqllogictest.cli import main
from dolite.testing.sqllogictest.parse import (
    DEFAULT_HASH_THRESHOLD,
    ENGINE,
    Record,
    parse,
    parse_file,
)
from dolite.testing.sqllogictest.runner import (
    Failure,
    Result,
    run_file,
    run_script,
    split_statements,
)
from dolite.testing.sqllogictest.values import format_rows, format_value, hash_values

__all__ = [
    "DEFAULT_HASH_THRESHOLD", "ENGINE", "Failure", "Record", "Result",
    "format_value", "format_rows", "hash_values", "parse", "parse_file", "run_file", "run_script",
    "split_statements", "main",
]
