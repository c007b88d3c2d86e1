"""sqllogictest scripts parsed into records (see the package docstring)."""

from __future__ import annotations

from pathlib import Path

ENGINE = "sqlite"
DEFAULT_HASH_THRESHOLD = 8
LABEL_CHARS = 20

# --------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------


class Record:
    """One record of a script.

    ``kind`` is ``statement``, ``query``, ``hash-threshold``, ``halt`` or whatever the
    first token was (an unknown kind, reported when run).  ``line`` is the line number
    (1-based) of the record's command line (after any skipif/onlyif lines).
    """

    __slots__ = ("kind", "line", "conditions", "tokens", "sql", "expected")

    def __init__(self, kind: str, line: int, conditions: tuple, tokens: list[str],
                 sql: str = "", expected: list[str] | None = None):
        self.kind = kind
        self.line = line
        self.conditions = conditions  # (("skipif" or "onlyif", db), ...)
        self.tokens = tokens          # the command line split on whitespace, max 4
        self.sql = sql
        self.expected = expected      # query: lines after ----, None if no ---- line

    # Convenience accessors --------------------------------------------------------
    def token(self, i: int) -> str:
        return self.tokens[i] if i < len(self.tokens) else ""

    @property
    def types(self) -> str:
        return self.token(1)

    @property
    def sort(self) -> str:
        return self.token(2)

    @property
    def label(self) -> str:
        return self.token(3)[:LABEL_CHARS]

    def skipped_on(self, engine: str = ENGINE) -> bool:
        engine = engine.lower()
        for cond, db in self.conditions:
            match = db.lower() == engine
            if (cond == "skipif") == match:
                return True
        return False

    def __repr__(self) -> str:
        return f"Record({self.kind!r}, line={self.line}, tokens={self.tokens!r}, sql={self.sql!r})"


def parse(text: str) -> list[Record]:
    """Split a script into records (see the module docstring for the rules)."""
    records: list[Record] = []
    block: list[tuple[int, str]] = []
    lines = text.split("\n")
    n = len(lines)
    # A trailing newline does not make an extra (empty) line.
    if n and lines[-1] == "":
        n -= 1
    for i in range(n + 1):
        if i < n:
            line = lines[i]
            if line[-1:] == "\r":
                line = line[:-1]
            if line[:1] == "#":
                continue                      # comment: invisible everywhere
            if line and not line.isspace():
                block.append((i + 1, line))
                continue
        if block:
            records.append(_record(block))
            block = []
    return records


def _record(block: list[tuple[int, str]]) -> Record:
    conditions = []
    k = 0
    nb = len(block)
    while k < nb:
        tokens = block[k][1].split(None, 4)[:4]
        if tokens[0] in ("skipif", "onlyif"):
            conditions.append((tokens[0], tokens[1] if len(tokens) > 1 else ""))
            k += 1
            continue
        break
    else:
        # skipif/onlyif followed by a blank line: the reference reads an empty command.
        return Record("", block[-1][0] + 1, tuple(conditions), [""])
    lineno, _ = block[k]
    kind = tokens[0]
    rest = [text for _, text in block[k + 1:]]
    if kind == "statement":
        return Record(kind, lineno, tuple(conditions), tokens, "\n".join(rest))
    if kind == "query":
        try:
            sep = rest.index("----")
        except ValueError:
            return Record(kind, lineno, tuple(conditions), tokens, "\n".join(rest), None)
        return Record(kind, lineno, tuple(conditions), tokens, "\n".join(rest[:sep]), rest[sep + 1:])
    return Record(kind, lineno, tuple(conditions), tokens)


def parse_file(path: str | Path) -> list[Record]:
    data = Path(path).read_bytes()
    return parse(data.decode("utf-8", "surrogateescape"))


