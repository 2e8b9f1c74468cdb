"""The worker's tables: each key lives in Kafka's partition of the key, in the changelog and in the local store.

The contract topics are partitioned by murmur2 of their key (Kafka's default partitioner), so the subject of a
record read from topic partition p has its state in table partition p. `KeyPartitionedTable` sends each change
to that changelog partition, computed from the key alone, and `KeyPartitionedRocksStore` keeps it in that
partition's RocksDB database. Neither needs a "current event": the worker writes states after the broker has
acknowledged a batch's alerts (outside any event), a batch spans partitions, and the clocks are saved by a timer.
Faust's own RocksDB store takes the partition from the current event (and asserts there is one), so it stalls at
the first such write, and would put a batch's states in the database of whichever record came last.

Each partition's database also stores the offset of the last changelog message it holds (written when the broker
acknowledges the message), so a restarted worker reads only the changelog written after it: the tail.
"""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import faust
from faust.stores.rocksdb import RocksDBOptions
from faust.stores.rocksdb import Store as RocksStore
from yarl import URL

from schemas.errors import ConfigError

log = logging.getLogger(__name__)


def murmur2_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner (Java `Utils.murmur2`, positive, modulo the partition count)."""
    return _murmur2_partition(bytes(key), partitions)


@functools.lru_cache(maxsize=1 << 17)
def _murmur2_partition(key: bytes, partitions: int) -> int:
    """Remembered: pure Python costs about 10 µs a key, and the same subjects' keys come back all the time."""
    seed, m, r = 0x9747B28C, 0x5BD1E995, 24
    mask = 0xFFFFFFFF
    length = len(key)
    h = (seed ^ length) & mask
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(key[i : i + 4], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = (h * m) & mask
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= key[whole + 2] << 16
    if rest >= 2:
        h ^= key[whole + 1] << 8
    if rest >= 1:
        h ^= key[whole]
        h = (h * m) & mask
    h ^= h >> 13
    h = (h * m) & mask
    h ^= h >> 15
    return (h & 0x7FFFFFFF) % partitions


@dataclass
class RocksMemory:
    """One memory budget for every RocksDB database of a worker (3 tables x its partitions).

    Faust's defaults give each partition's database a 2 GiB block cache and up to 192 MiB of memtables; here all
    databases share one LRU block cache and their memtables are charged to it, so the worker's RocksDB memory
    stays near `cache_bytes` whatever the number of partitions it holds.
    """

    cache_bytes: int
    write_buffer_bytes: int = 4 * 1024 * 1024
    max_open_files: int = 256
    _cache: Any = field(default=None, init=False, repr=False)
    _write_buffers: Any = field(default=None, init=False, repr=False)

    def shared(self) -> tuple[Any, Any]:
        """The block cache and write-buffer manager every database uses (created on first use)."""
        if self._cache is None:
            import rocksdict

            self._cache = rocksdict.Cache(self.cache_bytes)
            self._write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
                self.cache_bytes // 2, False, self._cache
            )
        return self._cache, self._write_buffers


class _BoundedOptions(RocksDBOptions):
    """Faust's rocksdict options with the worker's shared cache and write-buffer manager."""

    def __init__(self, memory: RocksMemory) -> None:
        super().__init__(
            max_open_files=memory.max_open_files,
            write_buffer_size=memory.write_buffer_bytes,
            max_write_buffer_number=2,
            use_rocksdict=True,
        )
        self.memory = memory

    def as_options(self) -> Any:
        import rocksdict

        cache, write_buffers = self.memory.shared()
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(self.memory.max_open_files)
        options.set_write_buffer_size(self.write_buffer_size)
        options.set_max_write_buffer_number(self.max_write_buffer_number)
        options.set_target_file_size_base(self.target_file_size_base)
        options.set_write_buffer_manager(write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_block_cache(cache)
        table.set_cache_index_and_filter_blocks(True)
        options.set_block_based_table_factory(table)
        return options


class KeyPartitionedRocksStore(RocksStore):
    """Faust's RocksDB store, with each key in the database of Kafka's partition of the key.

    Reads, writes and deletes go to that one database, with or without a current event. Recovery still writes each
    changelog message to the database of the partition it was read from (Faust's `apply_changelog_batch`), which is
    the same one: the changelog is written at Kafka's partition of the key (`KeyPartitionedTable`). A revoked
    partition's database is closed (its memtables flushed); when the partition comes back, recovery replays the
    changelog from the offset stored in it, so what other workers wrote meanwhile is read before any record.
    """

    def __init__(self, url: str | URL, app: Any, table: Any, *, partitions: int, memory: RocksMemory, **kwargs: Any):
        super().__init__(url, app, table, driver="rocksdict", **kwargs)
        self.partitions = partitions
        self.rocksdb_options = _BoundedOptions(memory)

    def partition_of(self, key: bytes) -> int:
        """The partition the table places the key in (its changelog partition): one rule for both."""
        partition = self.table.partition_for_key(key)
        assert partition is not None, "a KeyPartitionedTable places every key"
        return partition

    def _db_for_key(self, key: bytes) -> Any:
        return self._db_for_partition(self.partition_of(key))

    def _set(self, key: bytes, value: bytes | None) -> None:
        if value is None:  # a table value of None is stored as no value, as the changelog's tombstone is
            self._del(key)
            return
        self._db_for_key(key).put(key, value)

    def _get(self, key: bytes) -> bytes | None:
        value: bytes | None = self._db_for_key(key).get(key)
        return value

    def _del(self, key: bytes) -> None:
        self._db_for_key(key).delete(key)

    def _contains(self, key: bytes) -> bool:
        return self._get(key) is not None

    def _dbs_for_actives(self) -> Iterator[Any]:
        """The databases of every partition this worker is active for, opened if they are not (yet, or again).

        Faust iterates only the databases it has open, and opens a partition's at assignment only when it was not
        assigned before: a partition this worker held as a standby and now takes over (its database closed when it
        was revoked, and nothing replicated since) would be left out, and with it every subject of the partition
        (the worker rebuilds its deadline index by iterating the tables).
        """
        topic = self.table.changelog_topic.get_topic_name()
        partitions = sorted({tp.partition for tp in self.app.assignor.assigned_actives() if tp.topic == topic})
        for partition in partitions:
            yield self._db_for_partition(partition)

    def revoke_partitions(self, table: Any, tps: Any) -> None:
        for tp in tps:
            if tp.topic in table.changelog_topic.topics:
                self._close(tp.partition)

    async def stop(self) -> None:
        for partition in list(self._dbs):
            self._close(partition)

    def _close(self, partition: int) -> None:
        db = self._dbs.pop(partition, None)
        if db is None:
            return
        try:
            db.close()  # flushes the memtables and releases the lock; a partition coming back reopens it
        except Exception:  # closing a database twice, or one RocksDB already shut: nothing left to do
            log.debug("closing the %s database of partition %d failed", self.table_name, partition, exc_info=True)


@dataclass(frozen=True)
class ChangelogWrite:
    """One change sent to a table's changelog: its ack (`sent`), and what it takes to send it again."""

    table: KeyPartitionedTable
    sent: Any  # faust FutureMessage: resolves with the broker's ack, or fails with the send's error
    partition: int | None
    key: Any
    value: Any
    key_serializer: Any
    value_serializer: Any

    def resend(self) -> ChangelogWrite:
        """The same change sent again (a changelog message is a key's whole value: sending it twice is harmless)."""
        self.table.send_changelog(self.partition, self.key, self.value, self.key_serializer, self.value_serializer)
        return self.table._unacked.pop()


class KeyPartitionedTable(faust.Table[bytes, Any]):
    """A Faust table that places each key on Kafka's default partition of the key, in its changelog and its store.

    Faust's own options either take the partition of the event being processed (so writes from a timer fail)
    or ask the producer's partitioner, which needs topic metadata the producer may not have fetched yet at
    start-up (aiokafka then fails with `TypeError` in `_partition`). The partition here is computed from the
    key alone, exactly as the contract topics are partitioned, so the table stays co-partitioned with them.
    Keys are raw bytes (`key_type=bytes`): the store hashes the bytes it is given, which are then the key itself.
    """

    def __init__(self, *args: Any, rocks: RocksMemory | None = None, **kwargs: Any) -> None:
        if kwargs.get("key_type") is not bytes:
            raise TypeError("a KeyPartitionedTable has raw bytes keys (key_type=bytes)")
        super().__init__(*args, **kwargs)
        self.rocks = rocks
        self._unacked: list[ChangelogWrite] = []

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        """Send a change to the changelog, and remember it until `take_unacked` hands it to whoever awaits the ack.

        Faust's commit does not wait for these: its producer flush gives up on its buffer after 0.1 s without a send
        (`ProducerBuffer.flush_atmost`), so on a busy worker offsets were committed with state changes still in the
        buffer, and a crash lost them (a household's incident missing from its count: an alert never raised).
        """
        sent = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._unacked.append(ChangelogWrite(self, sent, partition, key, value, key_serializer, value_serializer))
        return sent

    def take_unacked(self) -> list[ChangelogWrite]:
        """The changes sent since the last call, each with the future its broker's acknowledgement resolves."""
        taken, self._unacked = self._unacked, []
        return taken

    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None, "declared with the contract topics' partition count"
        return murmur2_partition(key if isinstance(key, bytes) else str(key).encode("utf-8"), self.partitions)

    def _new_store_by_url(self, url: str | URL) -> Any:
        if URL(url).scheme != "rocksdb":
            return super()._new_store_by_url(url)
        assert self.partitions is not None, "declared with the contract topics' partition count"
        return KeyPartitionedRocksStore(
            url,
            self.app,
            self,
            partitions=self.partitions,
            memory=self.rocks or RocksMemory(cache_bytes=64 * 1024 * 1024),
            table_name=self.name,
            key_type=self.key_type,
            key_serializer=self.key_serializer,
            value_serializer=self.value_serializer,
            value_type=self.value_type,
            options=self.options,
        )


class PartitionClockTable(KeyPartitionedTable):
    """The saved partition clocks: the clock of `<topic>#<p>` lives in table partition p, with the subjects it drives.

    A clock belongs to the worker that owns partition p of the contract topics; placed by a hash of its key it
    would land in a partition some other worker may own, and a restarted worker would not find its own clocks.
    """

    def partition_for_key(self, key: Any) -> int:
        assert self.partitions is not None, "declared with the contract topics' partition count"
        text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        _, sep, number = text.rpartition("#")
        if sep and number.isdigit():
            return int(number) % self.partitions
        return super().partition_for_key(key)


class Utf8Keys(MutableMapping[str, Any]):
    """A Faust table with raw (bytes) keys seen as a mapping with str keys."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        return self.table[key.encode("utf-8")]

    def get(self, key: str, default: Any = None) -> Any:
        return self.table.get(key.encode("utf-8"), default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key.encode("utf-8")] = value

    def __delitem__(self, key: str) -> None:
        del self.table[key.encode("utf-8")]

    def __iter__(self) -> Iterator[str]:
        return (key.decode("utf-8") for key in self.table)

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        """Keys and values in one pass over the store (the mixin's would look every key up again)."""
        return ((key.decode("utf-8"), value) for key, value in self.table.items())

    def __len__(self) -> int:
        return len(self.table)


def discard_state_ahead_of(
    tables_dir: Path, changelog_ends: Mapping[tuple[str, int], int], changelog_of: Callable[[str], str]
) -> list[Path]:
    """Remove each partition database that says it holds changelog messages its changelog does not have.

    That database belongs to another history of the topic: a broker whose data was removed, a changelog deleted
    and created again. Faust would refuse to start with it (its recovery consistency check), and reading on from
    it would mix two histories. The local state is only a copy of the changelog, so the partition is simply
    recovered again from the start. `changelog_ends` maps (changelog topic, partition) to its end offset; a topic
    missing from it is left alone (no metadata is no proof).
    """
    import rocksdict

    removed: list[Path] = []
    for path in sorted(tables_dir.glob("*-*.db")):
        table, _, partition = path.name.removesuffix(".db").rpartition("-")
        end = changelog_ends.get((changelog_of(table), int(partition))) if partition.isdigit() else None
        if end is None:
            continue
        db = rocksdict.Rdict(
            str(path), options=rocksdict.Options(raw_mode=True), access_type=rocksdict.AccessType.read_only()
        )
        try:
            stored = db.get(RocksStore.offset_key)
        finally:
            db.close()
        if stored is not None and int(stored) >= end:
            log.warning(
                "%s holds changelog offset %s but %s[%s] ends at %d (another history of the topic): removed, the "
                "partition is recovered from its changelog",
                path,
                stored.decode(),
                changelog_of(table),
                partition,
                end,
            )
            shutil.rmtree(path)
            removed.append(path)
    return removed


def claim_data_dir(path: Path) -> BinaryIO:
    """Lock `path` for this process (created if missing), or fail at once naming the way out.

    RocksDB allows one process per database: a second worker on the same directory would otherwise wait on each
    partition's lock for half a minute and then crash. The lock lasts as long as the returned file stays open,
    which is the life of the process (the kernel drops it on exit, however the process ends).
    """
    path.mkdir(parents=True, exist_ok=True)
    handle = (path / ".lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        raise ConfigError(
            f"another worker is using {path}: give each worker on this machine its own SAFEGUARD_STREAMS__DATA_DIR "
            "or SAFEGUARD_STREAMS__GROUP_INSTANCE_ID"
        ) from exc
    os.set_inheritable(handle.fileno(), False)
    return handle


__all__ = [
    "KeyPartitionedRocksStore",
    "KeyPartitionedTable",
    "PartitionClockTable",
    "RocksMemory",
    "Utf8Keys",
    "claim_data_dir",
    "discard_state_ahead_of",
]
