"""The worker's tables on RocksDB: every key in the database of Kafka's partition of the key, written with or
without a current event, read back whatever partition it is in; recovery and restarts from the stored offsets.

These tests open real RocksDB databases, each in its own temp dir, without a broker (no app is started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.streams import current_event
from faust.types import TP
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from safeguard.settings import Settings
from schemas.errors import ConfigError
from streams.app import faust_options
from streams.settings import StreamsSettings
from streams.tables import (
    KeyPartitionedRocksStore,
    KeyPartitionedTable,
    RocksMemory,
    claim_data_dir,
    discard_state_ahead_of,
    murmur2_partition,
)

PARTITIONS = 6
KEYS = [f"child-{i:03d}".encode() for i in range(60)]


def _table(datadir: Path, name: str = "child-state") -> KeyPartitionedTable:
    app = faust.App("tables-test", store="rocksdb://", datadir=str(datadir), env={}, autodiscover=False)
    return KeyPartitionedTable(
        app,
        name=name,
        partitions=PARTITIONS,
        key_type=bytes,
        value_type=bytes,
        rocks=RocksMemory(cache_bytes=8 * 1024 * 1024),
    )


def _close(table: KeyPartitionedTable) -> None:
    asyncio.run(table.data.stop())


@pytest.fixture
def table(tmp_path: Path) -> Iterator[KeyPartitionedTable]:
    table = _table(tmp_path)
    yield table
    _close(table)


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes
    value: bytes | None

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)


@dataclass
class _Event:
    message: _Message


def _changelog(table: KeyPartitionedTable, key: bytes, value: bytes | None, offset: int) -> _Event:
    topic = table.changelog_topic_name
    return _Event(_Message(topic, murmur2_partition(key, PARTITIONS), offset, key, value))


@pytest.mark.parametrize(
    "key", [b"", b"a", b"ab", b"abc", b"abcd", b"21", "Ωmega-9434765919".encode(), bytes(range(97))]
)
def test_the_partition_is_kafkas_default_partitioners(key: bytes) -> None:
    assert murmur2_partition(key, 6) == (kafka_python_murmur2(key) & 0x7FFFFFFF) % 6
    assert murmur2_partition(key, 1000) == (kafka_python_murmur2(key) & 0x7FFFFFFF) % 1000


def test_the_rocksdb_url_gives_the_key_partitioned_store(table: KeyPartitionedTable) -> None:
    assert isinstance(table.data, KeyPartitionedRocksStore)
    assert table.data.use_rocksdict


def test_writes_without_a_current_event_land_in_the_database_of_the_keys_partition(
    table: KeyPartitionedTable,
) -> None:
    assert current_event() is None, "outside any stream, as the worker's state writes are"
    store = table.data
    for key in KEYS:
        store[key] = b"state of " + key
    placed = {murmur2_partition(key, PARTITIONS) for key in KEYS}
    assert placed == set(range(PARTITIONS)), "the keys must span every partition for this test to mean anything"
    for key in KEYS:
        home = murmur2_partition(key, PARTITIONS)
        assert store.partition_of(key) == table.partition_for_key(key) == home
        assert store._dbs[home].get(key) == b"state of " + key
        elsewhere = [p for p, db in store._dbs.items() if p != home and db.get(key) is not None]
        assert not elsewhere, f"{key!r} is also in partitions {elsewhere}"


def test_reads_contains_and_deletes_find_each_key_whatever_its_partition(table: KeyPartitionedTable) -> None:
    store = table.data
    for key in KEYS:
        store[key] = key[::-1]
    assert all(store[key] == key[::-1] for key in KEYS)
    assert all(key in store for key in KEYS)
    assert b"nobody" not in store
    with pytest.raises(KeyError):
        store[b"nobody"]
    for key in KEYS[::2]:
        del store[key]
    assert [key for key in KEYS if key in store] == KEYS[1::2]
    assert all(store._get(key) is None for key in KEYS[::2])


def test_a_table_write_sends_one_changelog_message_to_the_partition_its_store_uses(
    table: KeyPartitionedTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[tuple[int | None, bytes, Any]] = []

    @dataclass
    class _Sent:
        message: Any

    def send_changelog(partition: int | None, key: bytes, value: Any, *args: Any, **kwargs: Any) -> _Sent:
        sent.append((partition, key, value))
        return _Sent(message=_Message("changelog", partition or 0, 0, key, value))

    monkeypatch.setattr(table, "send_changelog", send_changelog)
    for key in KEYS[:12]:
        table[key] = b"v1"
    del table[KEYS[0]]
    assert [(p, k) for p, k, _ in sent] == [(murmur2_partition(k, PARTITIONS), k) for k in [*KEYS[:12], KEYS[0]]]
    assert sent[-1][2] is None, "a delete is a tombstone"
    assert KEYS[0] not in table and table[KEYS[1]] == b"v1"


def test_recovery_writes_each_changelog_message_where_reads_look_and_keeps_the_offsets(tmp_path: Path) -> None:
    table = _table(tmp_path)
    store = table.data
    events = [_changelog(table, key, b"recovered " + key, offset) for offset, key in enumerate(KEYS)]
    events.append(_changelog(table, KEYS[0], None, len(KEYS)))  # a tombstone
    store.apply_changelog_batch(events, to_key=lambda k: k, to_value=lambda v: v)
    assert KEYS[0] not in store
    assert all(store[key] == b"recovered " + key for key in KEYS[1:])
    last = {e.message.partition: e.message.offset for e in events}
    topic = table.changelog_topic_name
    assert {p: store.persisted_offset(TP(topic, p)) for p in range(PARTITIONS)} == last
    _close(table)

    restarted = _table(tmp_path)  # a new process on the same data dir: the state and the offsets are still there
    try:
        assert {p: restarted.data.persisted_offset(TP(topic, p)) for p in range(PARTITIONS)} == last
        assert all(restarted.data[key] == b"recovered " + key for key in KEYS[1:])
    finally:
        _close(restarted)


def test_a_revoked_partition_is_closed_and_reads_its_data_again_when_it_comes_back(table: KeyPartitionedTable) -> None:
    store = table.data
    for key in KEYS:
        store[key] = b"before"
    topic = table.changelog_topic_name
    store.revoke_partitions(table, {TP(topic, 2), TP("another-topic", 3)})
    assert 2 not in store._dbs and 3 in store._dbs, "only the table's own changelog partitions are closed"
    mine = [key for key in KEYS if murmur2_partition(key, PARTITIONS) == 2]
    assert all(store[key] == b"before" for key in mine), "reopened on the next read, with what it held"


def test_the_table_refuses_keys_that_are_not_raw_bytes(tmp_path: Path) -> None:
    app = faust.App("tables-test", store="rocksdb://", datadir=str(tmp_path), env={}, autodiscover=False)
    with pytest.raises(TypeError, match="bytes"):
        KeyPartitionedTable(app, name="t", partitions=PARTITIONS, key_type=str)


def test_all_databases_share_one_memory_budget() -> None:
    memory = RocksMemory(cache_bytes=8 * 1024 * 1024)
    assert memory.shared() is not None
    cache, buffers = memory.shared()
    assert memory.shared() == (cache, buffers)
    assert buffers.get_buffer_size() == 4 * 1024 * 1024


def test_a_data_directory_is_one_workers(tmp_path: Path) -> None:
    held = claim_data_dir(tmp_path / "w")
    try:
        with pytest.raises(ConfigError, match="SAFEGUARD_STREAMS__DATA_DIR"):
            claim_data_dir(tmp_path / "w")
        claim_data_dir(tmp_path / "other").close()
    finally:
        held.close()
    claim_data_dir(tmp_path / "w").close()  # free again once its holder is gone


def test_each_worker_has_its_own_data_dir_and_rocksdb_is_the_default(tmp_path: Path) -> None:
    default = StreamsSettings()
    assert default.store_url == "rocksdb://"
    assert default.table_dir == Path(".safeguard/streams/safeguard-streams")
    other = StreamsSettings(data_dir=tmp_path, app_id="other", group_instance_id="worker-2")
    assert other.table_dir == tmp_path / "other" / "worker-2"
    with pytest.raises(ValueError, match="group_instance_id"):
        StreamsSettings(group_instance_id="../elsewhere")


def test_faust_gets_the_data_dir_static_membership_and_session_timeout(tmp_path: Path) -> None:
    streams = StreamsSettings(data_dir=tmp_path, group_instance_id="worker-1", session_timeout_s=9)
    options = faust_options(Settings(_env_file=None, streams=streams), "127.0.0.1:9092")  # type: ignore[call-arg]
    assert options["store"] == "rocksdb://"
    assert options["datadir"] == str(tmp_path / "safeguard-streams" / "worker-1")
    assert options["consumer_group_instance_id"] == "worker-1"
    assert options["broker_session_timeout"] == 9
    assert options["broker_heartbeat_interval"] == 3
    app = faust.App("t", **options)
    assert app.conf.consumer_group_instance_id == "worker-1"
    assert app.conf.tabledir == tmp_path / "safeguard-streams" / "worker-1" / "v1" / "tables"


def test_a_database_ahead_of_its_changelog_is_dropped_and_the_others_kept(tmp_path: Path) -> None:
    """After the broker's data was removed the changelogs start again at 0: databases that hold more are another
    history (Faust would refuse to start); the ones within their changelog, and any without news, stay."""
    table = _table(tmp_path)
    topic = table.changelog_topic_name
    store = table.data
    for partition, offset in enumerate([5, 9, 0]):
        store.set_persisted_offset(TP(topic, partition), offset)
    tables_dir = store.path
    _close(table)
    ends = {(topic, 0): 6, (topic, 1): 9}  # partition 1 says it holds offset 9, its changelog ends before it
    removed = discard_state_ahead_of(tables_dir, ends, lambda name: f"tables-test-{name}-changelog")
    assert removed == [tables_dir / "child-state-1.db"]
    assert sorted(path.name for path in tables_dir.glob("*.db")) == ["child-state-0.db", "child-state-2.db"]
    restarted = _table(tmp_path)
    try:
        assert restarted.data.persisted_offset(TP(topic, 0)) == 5
        assert restarted.data.persisted_offset(TP(topic, 1)) is None, "recovered from the changelog's start"
    finally:
        _close(restarted)


def test_iteration_covers_every_active_partition_even_one_whose_database_was_closed(
    table: KeyPartitionedTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A partition held as a standby and then taken over is not "newly assigned", so Faust does not open its
    database again: iterating the table (as the worker does to rebuild its deadline index) must still see it."""
    store = table.data
    for key in KEYS:
        store[key] = b"x"
    topic = table.changelog_topic_name
    store.revoke_partitions(table, {TP(topic, 2), TP(topic, 4)})
    assert 2 not in store._dbs and 4 not in store._dbs
    actives = {TP(topic, p) for p in (1, 2, 3)} | {TP("some-source-topic", 4)}
    monkeypatch.setattr(table.app.assignor, "assigned_actives", lambda: actives)
    want = sorted(key for key in KEYS if murmur2_partition(key, PARTITIONS) in (1, 2, 3))
    assert sorted(store.keys()) == want
    assert sorted(key for key, _ in store.items()) == want
    assert len(store) == len(want)


def test_a_saved_partition_clock_lives_in_the_table_partition_of_its_clock() -> None:
    from streams.tables import PartitionClockTable

    table = PartitionClockTable.__new__(PartitionClockTable)
    table.partitions = 6
    assert table.partition_for_key(b"safeguarding.contacts.v1#4") == 4
    assert table.partition_for_key(b"safeguarding.missing-episodes.v1#0") == 0
    assert table.partition_for_key(b"safeguarding.contacts.v1#10") == 4  # modulo the partition count
    # Anything else falls back to the key's hash, as every other table places it.
    assert table.partition_for_key(b"no-partition") == murmur2_partition(b"no-partition", 6)


def test_utf8_keys_items_read_the_store_once_without_looking_every_key_up_again() -> None:
    class CountingTable(dict[bytes, bytes]):
        lookups = 0

        def __getitem__(self, key: bytes) -> bytes:
            CountingTable.lookups += 1
            return super().__getitem__(key)

    from streams.tables import Utf8Keys

    table = CountingTable({b"child-1": b"a", b"child-2": b"b"})
    assert sorted(Utf8Keys(table).items()) == [("child-1", b"a"), ("child-2", b"b")]
    assert CountingTable.lookups == 0


def test_murmur2_partition_is_the_same_remembered_or_not() -> None:
    keys = [f"{i:064x}".encode() for i in range(200)]
    first = [murmur2_partition(key, 6) for key in keys]
    assert [murmur2_partition(bytearray(key), 6) for key in keys] == first  # any bytes-like key, same answer
    assert [murmur2_partition(key, 6) for key in keys] == first
