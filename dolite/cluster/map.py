"""The shard map: which shard holds each routing key.

A key hashes (BLAKE2b of its UTF-8 bytes, never Python's ``hash``) to one of ``SLOTS``
fixed slots; the map assigns every slot to a shard. It lives in its own object
``<cluster>.map`` under the key ``map`` (sealed JSON: version, shard names, the shard
index of every slot), is written once at creation and changed only by compare-and-set, so
every process that opens the cluster routes alike and a later change can move slots.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from dolite.errors import Conflict
from dolite.names import validate_name
from dolite.pages.format import decode_record, encode_record
from dolite.sql.pep249 import ProgrammingError
from dolite.storage.base import Storage

SLOTS = 1024
MAP_KEY = "map"
MAX_SHARDS = SLOTS


def map_object(cluster: str) -> str:
    return validate_name(f"{cluster}.map")


def shard_name(cluster: str, index: int) -> str:
    return validate_name(f"{cluster}.s{index}")


def slot_of(key: str | bytes | int) -> int:
    """The slot of routing key ``key`` (str as UTF-8, bytes as is, int as its decimal text)."""
    if isinstance(key, bool) or not isinstance(key, (str, bytes, int)):
        raise TypeError(f"a routing key is str, bytes or int, not {type(key).__name__}")
    raw = key if isinstance(key, bytes) else str(key).encode()
    return int.from_bytes(hashlib.blake2b(raw, digest_size=8).digest(), "big") % SLOTS


@dataclass(frozen=True)
class ShardMap:
    """One version of the map."""

    version: int
    shards: tuple[str, ...]
    slots: tuple[int, ...]  # slot -> index into shards

    @classmethod
    def initial(cls, cluster: str, count: int) -> ShardMap:
        """``count`` shards, each owning an equal contiguous run of slots."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_SHARDS:
            raise ProgrammingError(f"shards must be an integer from 1 to {MAX_SHARDS}, not {count!r}")
        return cls(1, tuple(shard_name(cluster, i) for i in range(count)),
                   tuple(slot * count // SLOTS for slot in range(SLOTS)))

    def shard_for(self, key: str | bytes | int) -> str:
        return self.shards[self.slots[slot_of(key)]]

    def moved(self, slots: list[int], shard: str) -> ShardMap:
        """The next version, with ``slots`` assigned to ``shard`` (one of the shards)."""
        target = self.shards.index(shard)
        assign = list(self.slots)
        for slot in slots:
            assign[slot] = target
        return ShardMap(self.version + 1, self.shards, tuple(assign))

    def encode(self) -> bytes:
        return encode_record(MAP_KEY, {"version": self.version, "shards": list(self.shards),
                                       "slots": list(self.slots)})

    @classmethod
    def decode(cls, raw: bytes, where: str) -> ShardMap:
        fields = decode_record(raw, MAP_KEY, where)
        return cls(fields["version"], tuple(fields["shards"]), tuple(fields["slots"]))


def read_map(storage: Storage, where: str) -> ShardMap | None:
    raw = storage.get([MAP_KEY]).get(MAP_KEY)
    return None if raw is None else ShardMap.decode(raw, where)


def create_map(storage: Storage, new: ShardMap, where: str) -> ShardMap:
    """Store ``new`` if no map exists yet; return the map that stands."""
    try:
        storage.commit({MAP_KEY: new.encode()}, expect={MAP_KEY: None})
        return new
    except Conflict:
        return read_map(storage, where)


def replace_map(storage: Storage, old: ShardMap, new: ShardMap) -> None:
    """Store ``new`` only if ``old`` is still the stored map (else Conflict)."""
    if new.version != old.version + 1:
        raise ProgrammingError("a new shard map must be the next version of the old one")
    storage.commit({MAP_KEY: new.encode()}, expect={MAP_KEY: old.encode()})

