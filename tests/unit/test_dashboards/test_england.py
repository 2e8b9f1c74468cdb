"""The published England figures: the committed data file loads, every figure carries its source and year, every
figure is shown beside its local measure, and a wrong file is refused with every problem named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dashboards.catalogue import DASHBOARDS, ENGLAND, PANELS
from dashboards.england import (
    FIGURES_FILE,
    GRAFANA_UNITS,
    EnglandFigure,
    EnglandFiguresError,
    load_england_figures,
    parse_england_figures,
)
from dashboards.model import england_column
from schemas.errors import ConfigError

STATUTORY = ("safeguard-front-door", "safeguard-missing", "safeguard-domestic-abuse", "safeguard-child-protection")

GOOD = """
[re_referral_rate]
label = "Re-referrals within 12 months"
value = 22
unit = "percent"
period = "2023/24"
publisher = "Department for Education"
publication = "Children in need: a focus on re-referrals (2024)"
url = "https://explore-education-statistics.service.gov.uk/find-statistics/children-in-need-a-focus-on-re-referrals"
"""


def test_the_committed_file_loads_and_every_figure_has_its_source_and_year() -> None:
    figures = load_england_figures()
    assert figures == ENGLAND
    assert figures, "no England figures"
    for measure, figure in figures.items():
        assert figure.measure == measure
        assert figure.publisher and figure.publication, measure
        assert re.fullmatch(r"\d{4}(/\d{2})?", figure.period), measure
        assert re.search(r"\b(19|20)\d{2}\b", figure.publication), f"{measure}: the publication names its year"
        assert figure.url is None or figure.url.startswith("https://"), measure


def test_the_re_referral_rate_is_a_dfe_percentage() -> None:
    """The Front Door shows it beside the local rate (the value itself changes yearly: docs/dashboards.md)."""
    figure = ENGLAND["re_referral_rate"]
    assert figure.unit == "percent" and 0 < figure.value < 100
    assert figure.publisher == "Department for Education"
    assert figure.shown == f"{figure.value:g}%" and figure.heading == f"England {figure.period}"


def test_every_figure_is_shown_beside_its_measure_on_a_statutory_dashboard() -> None:
    shown = {f.measure for d in DASHBOARDS if d.uid in STATUTORY for p in d.panels for f in p.england.values()}
    assert shown == set(ENGLAND), "a figure in the data file that no statutory panel shows, or the reverse"
    for panel in PANELS.values():
        for column, figure in panel.england.items():
            assert figure == ENGLAND[figure.measure], panel.key
            assert panel.unit_of(column) == GRAFANA_UNITS[figure.unit], (panel.key, column)
            # a constant column right after the local one, so the two sit side by side in every row
            lines = [line.strip().rstrip(",") for line in panel.sql.splitlines()]
            local = next(i for i, line in enumerate(lines) if line.endswith(f" AS {column}") or line == column)
            assert lines[local + 1] == f"{figure.value!r} AS {england_column(column)}", panel.key
            assert england_column(column) not in panel.counts, "an England figure is not a local count to suppress"


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [(22, "percent", "22%"), (22.4, "percent", "22.4%"), (2.3, "per child", "2.3 per child"),
     (45, "per 10,000 children", "45 per 10,000 children")],
)  # fmt: skip
def test_a_figure_is_shown_in_its_unit(value: float, unit: str, shown: str) -> None:
    text = GOOD.replace("value = 22", f"value = {value}").replace('unit = "percent"', f'unit = "{unit}"')
    assert parse_england_figures(text)["re_referral_rate"].shown == shown


def test_url_and_note_are_optional() -> None:
    text = "\n".join(line for line in GOOD.splitlines() if not line.startswith("url"))
    figure = parse_england_figures(text)["re_referral_rate"]
    assert figure.url is None and figure.note == ""
    assert figure.source == "Department for Education, Children in need: a focus on re-referrals (2024)"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('publisher = "Department for Education"\n', ""), "[re_referral_rate]: publisher: is required"),
        (('period = "2023/24"', 'period = "2023/25"'), 'period: must be a financial year such as "2023/24"'),
        (('period = "2023/24"', 'period = "last year"'), "period: must be a financial year"),
        (("value = 22", "value = 122"), "a percentage cannot be over 100 (got 122)"),
        (("value = 22", "value = -1"), "value: must not be negative (got -1)"),
        (("value = 22", 'value = "22"'), "value: must be a number (got '22')"),
        (("value = 22", "value = nan"), "value: must be a finite number"),
        (('unit = "percent"', 'unit = "%"'), "unit: Input should be 'percent', 'per child' or 'per 10,000 children'"),
        (('url = "https://', 'url = "ftp://'), "url: must be a web address starting https://"),
        (('label = "Re-referrals within 12 months"', 'label = "  "'), "label: must not be empty"),
        (("value = 22", "value = 22\nsource = 'DfE'"), "source: unknown key; valid keys: label, value, unit, period"),
        (("value = 22", "value = 22\nmeasure = 'x'"), "measure: the table's name is the measure id"),
        (("[re_referral_rate]", '["re-referral; DROP TABLE"]'), "a measure id is lower-case letters, digits and _"),
    ],
)
def test_a_wrong_entry_is_refused_naming_the_file_entry_and_field(change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    with pytest.raises(EnglandFiguresError) as caught:
        parse_england_figures(GOOD.replace(old, new), source="england_reference.toml")
    assert isinstance(caught.value, ConfigError)  # the CLI turns it into a message and exit status 2
    assert str(caught.value).startswith("england_reference.toml: [")
    assert expected in str(caught.value)


def test_every_problem_is_reported_at_once() -> None:
    text = GOOD + '\n[repeat_plan_rate]\nlabel = "Repeat plans"\nvalue = 200\nunit = "percent"\n'
    with pytest.raises(EnglandFiguresError) as caught:
        parse_england_figures(text, source="f.toml")
    assert caught.value.problems == [
        "f.toml: [repeat_plan_rate]: period: is required",
        "f.toml: [repeat_plan_rate]: publisher: is required",
        "f.toml: [repeat_plan_rate]: publication: is required",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[re_referral_rate\n", "f.toml: not valid TOML"),
        ("", "f.toml: no figures"),
        ("re_referral_rate = 22\n", "f.toml: [re_referral_rate]: expected a table"),
    ],
)
def test_a_file_that_is_not_a_set_of_figures_is_refused(text: str, expected: str) -> None:
    with pytest.raises(EnglandFiguresError, match=re.escape(expected)):
        parse_england_figures(text, source="f.toml")


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EnglandFiguresError, match=r"england\.toml: no such file"):
        load_england_figures(tmp_path / "england.toml")


def test_the_data_file_is_where_the_docs_say() -> None:
    root = Path(__file__).resolve().parents[3]
    assert root / "dashboards" / "data" / "england_reference.toml" == FIGURES_FILE
    assert "dashboards/data/england_reference.toml" in (root / "docs" / "dashboards.md").read_text(encoding="utf-8")


def test_figures_are_immutable() -> None:
    figure = ENGLAND["re_referral_rate"]
    with pytest.raises(Exception, match="frozen"):
        figure.value = 50  # type: ignore[misc]
    assert isinstance(figure, EnglandFigure)
