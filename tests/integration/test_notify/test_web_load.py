"""The page under load, over real HTTP, with the server in a process of its own: hundreds of concurrent `/alerts`
views of hundreds of open alerts are all answered, `/healthz` answers while they are in flight, and each view is
one audit row. Latencies are printed (run with `-s`), never asserted: the machine is shared."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from notify.core import Timing
from notify.security import hash_password
from notify.store import NotifyStore
from tests.integration.test_notify.test_web import PASSWORD, hidden
from tests.unit.test_notify.helpers import FakeClock, make_alert, rota

ROOT = Path(__file__).resolve().parents[3]
OPEN_ALERTS = 400
VIEWS = 400
PAGE_SIZE = 50


def open_alerts(db: Path, n: int) -> None:
    store = NotifyStore(db)
    clock = FakeClock()
    try:
        alerts = [
            make_alert(f"load-{i}", severity=("info", "medium", "high", "critical")[i % 4], subject=f"kid-{i}")
            for i in range(n)
        ]
        store.take(alerts, rota(), Timing(), clock())
    finally:
        store.close()


@dataclass
class Load:
    views_done: int = 0
    statuses: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    health: list[tuple[float, int, int]] = field(default_factory=list)  # (seconds, status, views done before)


async def health_once(session: aiohttp.ClientSession, base: str) -> tuple[float, int]:
    started = time.perf_counter()
    async with session.get(f"{base}/healthz") as response:
        await response.read()
        return time.perf_counter() - started, response.status


async def run_load(base: str) -> tuple[Load, list[float], float]:
    load = Load()
    views = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.CookieJar(unsafe=True))
    health = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
    try:
        form = await (await views.get(f"{base}/login")).text()
        data = {"csrf": hidden(form, "csrf"), "next": "/alerts", "username": "dana", "password": PASSWORD}
        assert (await views.post(f"{base}/login", data=data)).status == 200
        idle = [(await health_once(health, base))[0] for _ in range(20)]

        async def view(n: int) -> None:
            async with views.get(f"{base}/alerts?page={n % (OPEN_ALERTS // PAGE_SIZE) + 1}") as response:
                text = await response.text()
                load.statuses.append(response.status)
                load.rows.append(text.count('<tr id="alert-'))
            load.views_done += 1

        async def poll_health() -> None:
            while load.views_done < VIEWS:
                before = load.views_done
                seconds, status = await health_once(health, base)
                load.health.append((seconds, status, before))
                await asyncio.sleep(0.01)

        started = time.perf_counter()
        poller = asyncio.create_task(poll_health())
        await asyncio.gather(*(view(n) for n in range(VIEWS)))
        elapsed = time.perf_counter() - started
        await poller
        return load, idle, elapsed
    finally:
        await views.close()
        await health.close()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def test_healthz_answers_while_hundreds_of_views_are_served(tmp_path: Path) -> None:
    db = tmp_path / "notify" / "notify.sqlite3"
    open_alerts(db, OPEN_ALERTS)
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_notify.page_server", str(db), hash_password(PASSWORD, n=2**10)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        load, idle, elapsed = asyncio.run(run_load(f"http://127.0.0.1:{port}"))
        peak = peak_rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert server.returncode == 0
    assert load.statuses == [200] * VIEWS
    assert load.rows == [PAGE_SIZE] * VIEWS  # every view a full page, never every alert
    assert load.health and all(status == 200 for _, status, _ in load.health)
    during = [seconds for seconds, _, before in load.health if before < VIEWS]
    assert during, "no /healthz answer while the views were in flight"
    store = NotifyStore(db)
    try:
        viewed = [e for e in store.audit_trail(VIEWS + 10) if e.action == "viewed"]
    finally:
        store.close()
    assert len(viewed) == VIEWS + 1 and all(e.alert_ids == () for e in viewed)  # and the one after login
    print(
        f"\n{VIEWS} concurrent views of {OPEN_ALERTS} open alerts: all answered in {elapsed:.2f} s; "
        f"/healthz idle median {statistics.median(idle) * 1000:.1f} ms; during the views: {len(during)} answers, "
        f"median {statistics.median(during) * 1000:.1f} ms, max {max(during) * 1000:.1f} ms; "
        f"server peak RSS {peak:.0f} MB"
    )
