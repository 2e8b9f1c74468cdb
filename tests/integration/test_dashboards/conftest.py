"""One chDB store per test session holding a calibrated simulated year of Leeds and of Leicester (one database
each), built once and reused by every dashboard test.

chDB allows one engine per process and other tests open other paths: the store is closed as soon as it is built,
and each test module opens it for its own tests and closes it at the end (see `store_client`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from producers.simulate import LEEDS_2019, LEICESTER_2019, Scenario
from safeguard.settings import ClickHouseSettings, Settings
from sinks.store import connect
from tests.integration.test_dashboards.store import LoadedYear, load_year

LONDON = ZoneInfo("Europe/London")


@dataclass
class DashboardStore:
    path: Path
    years: dict[str, LoadedYear]

    def settings(self, database: str) -> Settings:
        return Settings(_env_file=None, clickhouse=ClickHouseSettings(url=f"chdb://{self.path}", database=database))


def year_range(scenario: Scenario) -> tuple[datetime, datetime]:
    """Local midnight starting the scenario's first day, and ending its last."""
    first, last = scenario.first_day, scenario.last_day
    after = last.toordinal() + 1
    end = datetime.fromordinal(after)
    return (
        datetime(first.year, first.month, first.day, tzinfo=LONDON),
        datetime(end.year, end.month, end.day, tzinfo=LONDON),
    )


@pytest.fixture(scope="session")
def dashboard_store(tmp_path_factory: pytest.TempPathFactory) -> DashboardStore:
    path = tmp_path_factory.mktemp("dashboards") / "store"
    store = DashboardStore(path=path, years={})
    client = connect(store.settings("leeds"))
    try:
        for database, scenario in (("leeds", LEEDS_2019), ("leicester", LEICESTER_2019)):
            store.years[database] = load_year(client, database, scenario)
    finally:
        client.close()
    return store


@pytest.fixture(scope="module")
def store_client(dashboard_store: DashboardStore) -> Iterator[Any]:
    """A client on the session store for one module; set `.database` per query."""
    client = connect(dashboard_store.settings("leeds"))
    try:
        yield client
    finally:
        client.close()
