"""The notifier's SQLite store: pages of open alerts (order, range, the page of a linked message), use from several
threads, and private file permissions."""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from notify.core import Timing
from notify.store import NotifyStore
from tests.unit.test_notify.helpers import FakeClock, make_alert, rota

SEVERITIES = ("info", "medium", "high", "critical")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[NotifyStore]:
    s = NotifyStore(tmp_path / "data" / "notify.sqlite3")
    yield s
    s.close()


def fill(store: NotifyStore, clock: FakeClock, n: int, team_code: str = "383") -> list[str]:
    """`n` alerts for one team, one subject each (so one message each), a second apart, severities in turn."""
    ids = []
    for i in range(n):
        alert = make_alert(f"p{i}", severity=SEVERITIES[i % 4], subject=f"child-{i}", la_code=team_code)
        store.take([alert], rota(), Timing(), clock())
        ids.append(alert.alert_id)
        clock.advance(1)
    return ids


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_pages_are_most_severe_first_then_newest(store: NotifyStore) -> None:
    clock = FakeClock()
    fill(store, clock, 10)
    page = store.alerts_page("front-door", 1, 4)
    assert (page.page, page.pages, page.total) == (1, 3, 10)
    got = [(r.alert.severity, r.received_at) for r in page.records]
    assert [s for s, _ in got] == ["critical", "critical", "high", "high"]
    assert got[0][1] > got[1][1] and got[2][1] > got[3][1]  # newest first within a severity
    every = [r.alert.alert_id for p in (1, 2, 3) for r in store.alerts_page("front-door", p, 4).records]
    assert len(every) == len(set(every)) == 10  # the pages partition the open alerts


@pytest.mark.parametrize(("asked", "shown"), [(None, 1), (0, 1), (2, 2), (3, 3), (4, 3), (10**9, 3)])
def test_a_page_out_of_range_is_the_nearest_page(store: NotifyStore, asked: int | None, shown: int) -> None:
    fill(store, FakeClock(), 10)
    page = store.alerts_page("front-door", asked, 4)
    assert page.page == shown and len(page.records) == (2 if shown == 3 else 4)


def test_a_team_without_open_alerts_has_one_empty_page(store: NotifyStore) -> None:
    page = store.alerts_page("front-door", 5, 50)
    assert (page.page, page.pages, page.total, page.records) == (1, 1, 0, ())


def test_a_linked_message_opens_the_page_holding_its_alert(store: NotifyStore) -> None:
    ids = fill(store, FakeClock(), 120)
    oldest_info = ids[0]  # info, received first: the very last alert in page order
    message = next(m for m in range(1, 200) if store.message_alert_ids(m) == [oldest_info])
    page = store.alerts_page("front-door", None, 50, message)
    assert (page.page, page.pages) == (3, 3)
    assert oldest_info in page.linked and page.linked_open == 1
    assert oldest_info in [r.alert.alert_id for r in page.records]
    # an explicit page wins; the highlight stays wherever the alert is shown
    first = store.alerts_page("front-door", 1, 50, message)
    assert first.page == 1 and first.linked == {oldest_info}
    # a message none of whose alerts is open (or of another team) opens the first page
    assert store.alerts_page("front-door", None, 50, 10**6).page == 1


def test_threads_read_and_write_through_their_own_connections(store: NotifyStore) -> None:
    clock = FakeClock()
    fill(store, clock, 60)
    errors: list[BaseException] = []
    seen: list[int] = []

    def reader() -> None:
        try:
            for _ in range(20):
                page = store.alerts_page("front-door", 2, 50)
                seen.append(len(page.records))
                store.audit(clock(), "dana", "viewed", (), "page 2")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    fill(store, clock, 20)  # the owner thread writes meanwhile
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) == 80 and all(n >= 10 for n in seen)
    assert sum(e.action == "viewed" for e in store.audit_trail(500)) == 80


def test_a_closed_store_refuses_new_threads(tmp_path: Path) -> None:
    s = NotifyStore(tmp_path / "notify.sqlite3")
    s.close()
    failures: list[BaseException] = []
    thread = threading.Thread(target=lambda: _try(lambda: s.counts(), failures))
    thread.start()
    thread.join()
    assert failures and "closed" in str(failures[0])


def _try(fn: object, into: list[BaseException]) -> None:
    try:
        fn()  # type: ignore[operator]
    except BaseException as exc:
        into.append(exc)


def test_an_in_memory_store_is_shared_by_threads() -> None:
    s = NotifyStore(":memory:")
    try:
        s.audit(FakeClock()(), "system", "test")
        counts: list[int] = []
        thread = threading.Thread(target=lambda: counts.append(len(s.audit_trail())))
        thread.start()
        thread.join()
        assert counts == [1]
    finally:
        s.close()


def test_the_data_directory_and_database_files_are_private(tmp_path: Path) -> None:
    old = os.umask(0o022)  # the usual umask: files would be 0644, directories 0755
    try:
        s = NotifyStore(tmp_path / "state" / "notify" / "notify.sqlite3")
        s.audit(FakeClock()(), "system", "test")
    finally:
        os.umask(old)
    try:
        data = tmp_path / "state" / "notify"
        assert mode(data) == 0o700 and mode(data.parent) == 0o700
        files = {p.name: mode(p) for p in data.iterdir()}
        assert {"notify.sqlite3", "notify.sqlite3-wal", "notify.sqlite3-shm"} <= set(files)
        assert set(files.values()) == {0o600}
    finally:
        s.close()


def test_a_world_readable_database_is_tightened_on_open(tmp_path: Path) -> None:
    path = tmp_path / "notify.sqlite3"
    NotifyStore(path).close()
    for name in ("notify.sqlite3", "notify.sqlite3-wal", "notify.sqlite3-shm"):
        side = tmp_path / name
        side.touch()
        os.chmod(side, 0o644)
    s = NotifyStore(path)
    try:
        assert all(mode(tmp_path / n) == 0o600 for n in ("notify.sqlite3", "notify.sqlite3-wal", "notify.sqlite3-shm"))
    finally:
        s.close()


def test_an_existing_directory_is_left_as_it_is_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    NotifyStore(shared / "notify.sqlite3").close()
    assert mode(shared) == 0o755 and mode(shared / "notify.sqlite3") == 0o600
    assert "open to other users" in caplog.text
