"""The static report's rendering (pure: frames in, HTML out): England figures beside the local measure, with
their source and year, on an page that still links to nothing."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from dashboards import catalogue as c
from dashboards.query import Frame
from dashboards.report import DashboardResult, PanelResult, render

RE_REFERRAL = c.ENGLAND["re_referral_rate"]
RATES_COLUMNS = ("year", "contacts", "referrals", "referral_rate", "re_referrals", "re_referral_rate")


def _page(*results: PanelResult) -> str:
    return render(
        [DashboardResult(c.FRONT_DOOR, results)],
        title="Safeguarding partnership report (LA 856)",
        time_from=datetime(2019, 3, 31, 23, tzinfo=UTC),
        time_to=datetime(2020, 3, 31, 23, tzinfo=UTC),
        generated_at=datetime(2020, 4, 2, 9, tzinfo=UTC),
        suppressed=False,
        source="the embedded store chdb://test",
    )


def _figure(page: str, key: str) -> str:
    return page.split(f'id="{key}"', 1)[1].split("</figure>", 1)[0]


def test_the_england_rate_is_shown_beside_the_local_one_with_source_and_year() -> None:
    frame = Frame(
        (*RATES_COLUMNS, "re_referral_rate_england"),
        (("2019/20", 15_403, 2_704, 17.6, 332, 12.3, RE_REFERRAL.value),),
    )
    section = _figure(_page(PanelResult(c.REFERRAL_RATES, frame)), c.REFERRAL_RATES.key)
    headers = re.findall(r"<th>(.*?)</th>", section)
    assert headers[-2:] == ["re referral rate", f"England {RE_REFERRAL.period}"]
    assert f"<td>12.3</td><td>{RE_REFERRAL.value:.1f}</td></tr>" in section
    [note] = re.findall(r'<p class="england" data-measure="re_referral_rate">(.*?)</p>', section)
    assert f"<strong>England {RE_REFERRAL.period}: {RE_REFERRAL.shown}</strong>" in note
    assert f"Source: {RE_REFERRAL.publisher}, {RE_REFERRAL.publication}" in note
    assert RE_REFERRAL.url is not None and RE_REFERRAL.url in note


def test_the_source_is_cited_even_when_the_local_figure_is_missing() -> None:
    page = _page(PanelResult(c.REFERRAL_RATES, None, "panel front_door.referral_rates_year failed: timeout"))
    section = _figure(page, c.REFERRAL_RATES.key)
    assert "could not be computed" in section
    assert f"England {RE_REFERRAL.period}: {RE_REFERRAL.shown}" in section


def test_panels_without_an_england_figure_cite_none_and_the_page_links_nowhere() -> None:
    contacts = Frame(("year", "police", "total"), (("2019/20", 9_943, 26_204),))
    rates = Frame((*RATES_COLUMNS, "re_referral_rate_england"), (("2019/20", 1, 1, 100.0, 0, 0.0, 22.0),))
    page = _page(PanelResult(c.CONTACTS_BY_YEAR, contacts), PanelResult(c.REFERRAL_RATES, rates))
    assert 'class="england"' not in _figure(page, c.CONTACTS_BY_YEAR.key)
    assert page.count('class="england"') == 1
    # the address is printed, not linked: the report stays an offline document (tests/integration test_report)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
