"""`safeguard report` on the simulated-year store: one static page with every panel, opened in headless Chromium
(Debian's chromium and chromedriver, driven by selenium) and checked to draw its charts, offline.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from dashboards.catalogue import DASHBOARDS, ENGLAND
from safeguard.cli import cli
from tests.integration.test_dashboards.conftest import DashboardStore
from tests.tiers import unavailable

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PANELS = [p for d in DASHBOARDS for p in d.panels]
CHARTS = [p for p in PANELS if p.kind != "table"]


@pytest.fixture(scope="module")
def reports(dashboard_store: DashboardStore, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Leicester year rendered twice by the CLI: operational (period from the data) and suppressed."""
    out = tmp_path_factory.mktemp("report")
    env = {
        "SAFEGUARD_CLICKHOUSE__URL": f"chdb://{dashboard_store.path}",
        "SAFEGUARD_CLICKHOUSE__DATABASE": "leicester",
        "SAFEGUARD_LA_CODE": "856",
    }
    pages = {}
    for name, args in (
        ("operational", []),
        ("shared", ["--suppress", "--financial-year", "2019"]),
    ):
        path = out / f"{name}.html"
        result = CliRunner().invoke(cli, ["report", "--out", str(path), *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert f"wrote {path}" in result.output
        pages[name] = path
    return pages


def test_the_page_has_every_panel_and_no_failures(reports: dict[str, Path]) -> None:
    for name, path in reports.items():
        page = path.read_text(encoding="utf-8")
        assert "Period: 01 Apr 2019 00:00 to 01 Apr 2020 00:00 (Europe/London)" in page
        for panel in PANELS:
            assert f'id="{panel.key}"' in page
        assert page.count('<svg class="chart"') == len(CHARTS)
        assert "could not be computed" not in page
        assert "No data in this period" not in page
        # self-contained: nothing fetched from anywhere (the only URL is the SVG namespace)
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), name
        assert "<script" not in page


def test_the_operational_page_shows_the_published_leicester_figures(reports: dict[str, Path]) -> None:
    page = reports["operational"].read_text(encoding="utf-8")
    assert "Operational report: figures are not suppressed" in page
    missing = page.split('id="missing.episodes_and_children"', 1)[1].split("</figure>", 1)[0]
    assert "<td>Looked after</td><td>866</td><td>97</td><td>8.9</td>" in missing
    assert "<td>Not looked after</td><td>722</td><td>318</td><td>2.3</td>" in missing
    rates = page.split('id="front_door.referral_rates_year"', 1)[1].split("</figure>", 1)[0]
    assert "<td>15,403</td><td>2,704</td><td>17.6</td><td>332</td><td>12.3</td>" in rates
    # England's published rate beside Leicester's, with its year and source
    england = ENGLAND["re_referral_rate"]
    assert f"<td>12.3</td><td>{england.value:.1f}</td>" in rates
    assert f"<th>England {england.period}</th>" in rates
    assert f"England {england.period}: {england.shown}" in rates and england.publication in rates


def test_the_shared_page_suppresses_small_numbers(reports: dict[str, Path]) -> None:
    page = reports["shared"].read_text(encoding="utf-8")
    assert 'Counts of 1 to 5 are shown as "c"' in page
    assert page.count("<td>c</td>") > 0
    for panel in PANELS:
        if not panel.counts:
            continue
        section = page.split(f'id="{panel.key}"', 1)[1].split("</figure>", 1)[0]
        table = section.split("<table", 1)[1]
        headers = re.findall(r"<th>(.*?)</th>", table)
        for row in re.findall(r"<tr>((?:<td>.*?</td>)+)</tr>", table):
            cells = dict(zip(headers, re.findall(r"<td>(.*?)</td>", row), strict=True))
            for column in panel.counts:
                assert cells[column.replace("_", " ")] not in {"1", "2", "3", "4", "5"}, (panel.key, cells)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        unavailable("no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1600,1200",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.parametrize("name", ["operational", "shared"])
def test_chromium_draws_every_chart(browser: Any, reports: dict[str, Path], name: str) -> None:
    from selenium.webdriver.common.by import By

    browser.get(reports[name].as_uri())
    assert browser.title.startswith("Safeguarding partnership report")
    for panel in PANELS:
        figure = browser.find_element(By.ID, panel.key)
        assert not figure.find_elements(By.CSS_SELECTOR, ".error")
        if panel.kind == "table":
            rows = figure.find_elements(By.CSS_SELECTOR, "table.data tbody tr")
            assert rows and rows[0].is_displayed(), panel.key
            continue
        [chart] = figure.find_elements(By.CSS_SELECTOR, "svg.chart")
        assert chart.is_displayed(), panel.key
        assert chart.size["width"] > 300 and chart.size["height"] > 100, (panel.key, chart.size)
        marks = chart.find_elements(By.CSS_SELECTOR, ".mark")
        assert marks, f"{panel.key}: nothing drawn"
        drawn = [m for m in marks if m.size["width"] > 0 and m.size["height"] > 0]
        assert drawn, f"{panel.key}: marks have no size"
    # offline: the page asked for nothing beyond itself
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []


def test_a_store_without_tables_is_a_clear_error(tmp_path: Path) -> None:
    env = {"SAFEGUARD_CLICKHOUSE__URL": f"chdb://{tmp_path / 'empty'}"}
    result = CliRunner().invoke(cli, ["report", "--out", str(tmp_path / "r.html")], env=env)
    assert result.exit_code == 2
    assert "has no tables in database safeguard: run `safeguard sink migrate`" in result.output
    assert not (tmp_path / "r.html").exists()
