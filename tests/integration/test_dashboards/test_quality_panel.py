"""The Pipeline health dashboard's national-rule panel (`pipeline.quality_rules`) over the findings the store holds:
each rule's findings counted once, those not fed to the rules, and who found them."""

from __future__ import annotations

from typing import Any

import pytest

from dashboards import catalogue as c
from dashboards.query import context, run_panel
from schemas.quality import CHECKS_BY_ID
from tests.integration.test_dashboards.conftest import DashboardStore, year_range

pytestmark = pytest.mark.integration


def test_quality_findings_are_counted_by_national_rule(store_client: Any, dashboard_store: DashboardStore) -> None:
    year = dashboard_store.years["leeds"]
    store_client.database = year.database
    frame = run_panel(store_client, c.QUALITY_RULES, context(*year_range(year.scenario)))
    rows = {r["rule"]: r for r in frame.records()}
    assert {rule: r["findings"] for rule, r in rows.items()} == year.quality_rules
    for rule, r in rows.items():
        n = year.quality_rules[rule]
        assert r["check_name"] == CHECKS_BY_ID[rule].name
        assert r["not_fed"] == (0 if CHECKS_BY_ID[rule].feeds else n)
        assert (r["by_importer"], r["by_worker"]) == ((n + 1) // 2, n // 2)
    assert c.QUALITY_RULES in c.PIPELINE.panels
