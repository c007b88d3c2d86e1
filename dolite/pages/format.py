"""Key layout and value encodings of one database object.

==========================  ============================================================
``head``                    incarnation id, current version, file size, chunk size,
                            retention (JSON, sealed); may be followed by a NUL and one
                            chunk value the head holds inline (pages/inline.py)
``lease``                   write lease: epoch, owner, expiry (JSON, sealed)
``c/<chunk>/<version>``     one chunk of the file as of that version, checksummed
``c/<chunk>/~``             the chunk's in-place key: one version, named by its header,
                            overwritten by the next version written in place (sorts after
                            every version key of the chunk; see pages/locate.py)
``log/<version>``           commit record: time, size, chunk ranges written (JSON, sealed);
                            or a batch of the records a head carried (pages/log.py)
``gc``                      garbage-collection cursor (JSON, sealed)
==========================  ============================================================

Chunk and version numbers are fixed-width hex so that key order is numeric order.
Every value carries a CRC-32 over its key and bytes: chunks in their header, the other
records "sealed" (``<payload>#<crc32 hex>``), so a damaged or misplaced value is a
:class:`CorruptChunk`, never silently another version. The head's ``id`` names one
incarnation of the database: versions restart at 0 when a database is dropped and created
again, so caches are keyed by ``(id, chunk, version)``, never by version alone.
"""

from __future__ import annotations

import functools
import json
import os
import struct
import zlib
from collections.abc import Container, Iterable, Iterator
from dataclasses import dataclass

from dolite.errors import CorruptChunk

FORMAT = 1  # chunk encoding
HEAD_FORMAT = 3  # head and record encoding: sealed, with an incarnation id and recent records
INLINE_HEAD_FORMAT = 4  # a head holding a chunk inline (older dolite cannot read it)
READABLE_HEAD_FORMATS = (2, 3, 4)  # 2: before heads carried recent commit records
HEAD = "head"
LEASE = "lease"
GC = "gc"
CHUNK_PREFIX = "c/"
LOG_PREFIX = "log/"

# magic, format, chunk index, version, data length, crc32 of everything but itself
_CHUNK_HEADER = struct.Struct(">4sBxxxIQII")
CHUNK_HEADER_BYTES = _CHUNK_HEADER.size
_MAGIC = b"DLC\x01"


def chunk_key(chunk: int, version: int) -> str:
    return f"c/{chunk:08x}/{version:012x}"


def chunk_prefix(chunk: int) -> str:
    return f"c/{chunk:08x}/"


def parse_chunk_key(key: str) -> tuple[int, int]:
    """(chunk, version) of a version key (ValueError for an in-place key: see split_chunk_key)."""
    _, chunk, version = key.split("/")
    return int(chunk, 16), int(version, 16)


IN_PLACE = "~"  # the version part of an in-place key: sorts after every hex version


def in_place_key(chunk: int) -> str:
    return f"c/{chunk:08x}/{IN_PLACE}"


def split_chunk_key(key: str) -> tuple[int, int | None]:
    """(chunk, version) of any chunk key; version None for an in-place key, whose value's
    header names its version (:func:`stored_version`)."""
    _, chunk, version = key.split("/")
    return int(chunk, 16), None if version == IN_PLACE else int(version, 16)


def stored_version(raw: bytes, chunk: int, where: str) -> int:
    """The version a stored value of ``chunk`` says it holds. Only its header is read:
    :func:`decode_chunk` with that version then checks it all (the checksum covers it)."""
    if len(raw) >= CHUNK_HEADER_BYTES:
        magic, fmt, got_chunk, version, _, _ = _CHUNK_HEADER.unpack_from(raw)
        if magic == _MAGIC and fmt == FORMAT and got_chunk == chunk:
            return version
    raise CorruptChunk(f"{where}: the in-place value of chunk {chunk} has a bad header")


def listed_version(key: str, raw: bytes, where: str) -> tuple[int, int | None]:
    """(chunk, version) of a listed chunk key and its value: an in-place key's version read
    from its header, None where that header is damaged (the caller leaves such a value to
    whoever reads that chunk, or to ``dolite check``)."""
    chunk, version = split_chunk_key(key)
    if version is not None:
        return chunk, version
    try:
        return chunk, stored_version(raw, chunk, where)
    except CorruptChunk:
        return chunk, None


def chunk_versions(listed: dict[str, bytes], where: str) -> Iterator[tuple[int, int, str, bytes]]:
    """(chunk, version, key, value) of listed chunk keys, in key order: an in-place key's
    version read from its header."""
    for key, raw in listed.items():
        chunk, version = split_chunk_key(key)
        yield chunk, stored_version(raw, chunk, where) if version is None else version, key, raw


def log_key(version: int) -> str:
    return f"log/{version:012x}"


def parse_log_key(key: str) -> int:
    return int(key.split("/")[1].split("#")[0], 16)


def seal(key: str, payload: bytes) -> bytes:
    """``payload`` with a CRC-32 over the key it is stored under and its bytes."""
    crc = zlib.crc32(payload, zlib.crc32(key.encode() + b"\0"))
    return payload + b"#%08x" % crc


def unseal(key: str, raw: bytes, where: str) -> bytes:
    """The payload of a sealed value stored under ``key``, or CorruptChunk."""
    payload, mark, crc = raw[:-9], raw[-9:-8], raw[-8:]
    if mark != b"#" or not crc.isalnum():
        raise CorruptChunk(f"{where}: record {key!r} has no checksum (damaged, or written by an older dolite)")
    if b"%08x" % zlib.crc32(payload, zlib.crc32(key.encode() + b"\0")) != crc:
        raise CorruptChunk(f"{where}: checksum mismatch in record {key!r}")
    return payload


def new_incarnation() -> int:
    return int.from_bytes(os.urandom(6), "big")


@dataclass(frozen=True)
class Inline:
    """A chunk version held in the head instead of a key of its own (pages/inline.py).
    ``value`` is the chunk encoded exactly as a chunk key would store it. Versions
    ``since`` to ``version - 1`` of the chunk were held inline and dropped: a reader of one
    of them finds its snapshot expired."""

    chunk: int
    version: int
    since: int
    value: bytes

    @property
    def data(self) -> bytes:
        return self.value[CHUNK_HEADER_BYTES:]


@dataclass(frozen=True)
class Head:
    """The committed state a reader pins: everything needed to read the file."""

    version: int
    size: int
    chunk_size: int
    retention: float
    time: float
    id: int  # incarnation: new each time the database is created
    format: int = HEAD_FORMAT
    # Commit records of the newest versions, carried here instead of one log row each
    # (pages/log.py): (version, time, size, old size, chunk ranges[, replaced versions]).
    recent: tuple = ()
    inline: Inline | None = None  # a chunk version held in the head (pages/inline.py)

    @property
    def identity(self) -> tuple[int, int]:
        """(incarnation, version): names one committed state for ever, across drops."""
        return self.id, self.version

    @property
    def writes_in_place(self) -> bool:
        """Whether commits may overwrite chunks in place (``c/<chunk>/~``), so readers look
        for those keys too: a database that keeps no superseded versions (pages/in_place.py)."""
        return self.retention == 0

    @property
    def chunk_count(self) -> int:
        return -(-self.size // self.chunk_size)

    @functools.cached_property
    def encoded(self) -> bytes:
        """The stored bytes (computed once: a commit compares and writes them)."""
        recent = f',"recent":[{",".join(map(_record_json, self.recent))}]' if self.recent else ""
        inline, tail, fmt = "", b"", self.format
        if self.inline is not None:
            held = self.inline
            inline = f',"inline":[{held.chunk},{held.version},{held.since},{zlib.crc32(held.value)}]'
            tail, fmt = b"\0" + held.value, INLINE_HEAD_FORMAT
        return seal(HEAD, (f'{{"id":{self.id},"version":{self.version},"size":{self.size},'
                           f'"chunk_size":{self.chunk_size},"retention":{self.retention!r},'
                           f'"time":{self.time!r},"format":{fmt}{recent}{inline}}}').encode()) + tail

    def encode(self) -> bytes:
        return self.encoded

    @classmethod
    def decode(cls, raw: bytes, where: str = "database") -> Head:
        raw = bytes(raw)
        sealed, _, tail = raw.partition(b"\0")
        payload = unseal(HEAD, sealed, where)
        try:
            fields = json.loads(payload)
            if fields.get("format") not in READABLE_HEAD_FORMATS:
                raise CorruptChunk(f"{where}: head has unknown format {fields.get('format')!r}")
            fields["recent"] = tuple((v, t, s, o, tuple(map(tuple, ranges)), *map(tuple, replaced))
                                     for v, t, s, o, ranges, *replaced in fields.get("recent", ()))
            if "inline" in fields:
                fields["inline"] = _inline(fields.pop("inline"), tail, where)
                fields["format"] = HEAD_FORMAT
            elif tail:
                raise CorruptChunk(f"{where}: head record has bytes past its end")
            head = cls(**fields)
            head.__dict__["encoded"] = raw  # exactly what storage holds (compare-and-set)
            return head
        except (ValueError, TypeError) as exc:
            raise CorruptChunk(f"{where}: head record is unreadable: {exc}") from exc

    def advance(self, size: int, time: float) -> Head:
        """The next version's head, carrying no records (pages/log.py adds them) and no
        chunk inline (pages/inline.py decides what it holds)."""
        return Head(self.version + 1, size, self.chunk_size, self.retention, time, self.id, HEAD_FORMAT, ())

    def carrying(self, recent: tuple) -> Head:
        """This head with ``recent`` as its records (built directly: once per commit, where
        ``dataclasses.replace`` costs several times as much)."""
        return Head(self.version, self.size, self.chunk_size, self.retention, self.time, self.id, self.format,
                    recent, self.inline)

    def holding(self, inline: Inline | None) -> Head:
        """This head holding ``inline`` (or no chunk)."""
        return Head(self.version, self.size, self.chunk_size, self.retention, self.time, self.id, self.format,
                    self.recent, inline)


def _inline(fields: list, tail: bytes, where: str) -> Inline:
    """The chunk a head holds inline, checked against the head's own account of it."""
    chunk, version, since, crc = fields
    if zlib.crc32(tail) != crc:
        raise CorruptChunk(f"{where}: checksum mismatch in the chunk the head holds")
    decode_chunk(tail, chunk, version, where)
    return Inline(chunk, version, since, tail)


@functools.lru_cache(maxsize=1024)
def _record_json(record: tuple) -> str:
    """One of ``Head.recent``'s records as JSON (a head carries up to 32 of them, each
    written again by the next 31 heads: encoded once)."""
    return json.dumps(record, separators=(",", ":"))


def encode_chunk(chunk: int, version: int, data: bytes) -> bytes:
    header = _CHUNK_HEADER.pack(_MAGIC, FORMAT, chunk, version, len(data), 0)
    crc = zlib.crc32(data, zlib.crc32(header[:-4]))
    return header[:-4] + crc.to_bytes(4, "big") + data


def encoded_chunks(version: int, chunks: Iterable[tuple[int, bytes]], *,
                   in_place: Container[int] = ()) -> Iterator[tuple[str, bytes]]:
    """(key, stored value) of each (chunk, data) as of ``version``, one at a time: under
    its version key, or its in-place key for those in ``in_place``."""
    for c, data in chunks:
        yield in_place_key(c) if c in in_place else chunk_key(c, version), encode_chunk(c, version, data)


def decode_chunk(raw: bytes, chunk: int, version: int, where: str) -> bytes:
    """Return the chunk's data, or raise CorruptChunk if it fails any check."""
    if len(raw) < CHUNK_HEADER_BYTES:
        raise CorruptChunk(f"{where}: chunk {chunk} v{version} is truncated ({len(raw)} bytes)")
    magic, fmt, got_chunk, got_version, length, crc = _CHUNK_HEADER.unpack_from(raw)
    data = raw[CHUNK_HEADER_BYTES:]
    if magic != _MAGIC or fmt != FORMAT:
        raise CorruptChunk(f"{where}: chunk {chunk} v{version} has a bad header")
    if (got_chunk, got_version) != (chunk, version):
        raise CorruptChunk(
            f"{where}: key says chunk {chunk} v{version}, value says chunk {got_chunk} v{got_version}"
        )
    if length != len(data) or zlib.crc32(data, zlib.crc32(raw[: CHUNK_HEADER_BYTES - 4])) != crc:
        raise CorruptChunk(f"{where}: checksum mismatch in chunk {chunk} v{version}")
    return data


def encode_record(key: str, fields: dict) -> bytes:
    """JSON, sealed for ``key``; zlib-compressed when large (small records: compression
    costs more than it saves)."""
    text = json.dumps(fields, separators=(",", ":")).encode()
    return seal(key, text if len(text) < 1024 else zlib.compress(text, 1))


def decode_record(raw: bytes, key: str, where: str = "database") -> dict:
    """The fields of a record stored under ``key`` (a log record, the GC cursor)."""
    payload = unseal(key, raw, where)
    try:
        return json.loads(payload if payload[:1] == b"{" else zlib.decompress(payload))
    except (zlib.error, ValueError) as exc:
        raise CorruptChunk(f"{where}: record {key!r} is unreadable: {exc}") from exc


def to_ranges(numbers: list[int]) -> list[list[int]]:
    """Sorted ints as inclusive ``[first, last]`` runs: the compact form of chunk lists."""
    ranges: list[list[int]] = []
    for n in sorted(numbers):
        if ranges and ranges[-1][1] == n - 1:
            ranges[-1][1] = n
        else:
            ranges.append([n, n])
    return ranges


def from_ranges(ranges: list[list[int]]) -> list[int]:
    return [n for first, last in ranges for n in range(first, last + 1)]
