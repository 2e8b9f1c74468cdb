"""Published England figures, shown beside the same local measures as a reference (docs/dashboards.md).

They live in one data file, `dashboards/data/england_reference.toml`, so the yearly update is a change of data and
not of code. The file is checked as it is read: a figure without its source, its year or a sensible value stops
`safeguard dashboards build` and the report with every problem named, instead of reaching a dashboard.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from schemas.errors import ConfigError

FIGURES_FILE = Path(__file__).parent / "data" / "england_reference.toml"
"""The one place the England figures are kept."""

Unit = Literal["percent", "per child", "per 10,000 children"]
GRAFANA_UNITS: dict[str, str] = {"percent": "percent", "per child": "short", "per 10,000 children": "short"}
"""The Grafana unit each figure's unit is shown in."""

_MEASURE = re.compile(r"[a-z][a-z0-9_]{0,40}")  # a measure id becomes part of a SQL column name: nothing else gets in
_PERIOD = re.compile(r"(\d{4})(?:/(\d{2}))?")
_MESSAGES = {
    "missing": "is required",
    "string_too_short": "must not be empty",
    "float_type": "must be a number",
    "string_type": "must be text in quotes",
    "finite_number": "must be a finite number",
    "greater_than_equal": "must not be negative",
    "string_pattern_mismatch": "must be a web address starting https://",
}


class EnglandFiguresError(ConfigError):
    """The England figures file cannot be used; `problems` lists every issue, one line each, the file name first."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__("\n".join(problems))


class EnglandFigure(BaseModel):
    """One published England figure, with the publication and year an analyst needs to cite it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True, strict=True)

    measure: str
    label: str = Field(min_length=1)
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: Unit
    period: str
    publisher: str = Field(min_length=1)
    publication: str = Field(min_length=1)
    url: str | None = Field(default=None, pattern=r"^https?://\S+$")
    note: str = ""

    @field_validator("period")
    @classmethod
    def _is_a_year(cls, period: str) -> str:
        match = _PERIOD.fullmatch(period)
        if match is None or (match[2] is not None and int(match[2]) != (int(match[1]) + 1) % 100):
            raise ValueError('must be a financial year such as "2023/24" or a year such as "2018"')
        return period

    @model_validator(mode="after")
    def _a_percentage_is_at_most_100(self) -> EnglandFigure:
        if self.unit == "percent" and self.value > 100:
            raise ValueError(f"value: a percentage cannot be over 100 (got {self.value:g})")
        return self

    @property
    def shown(self) -> str:
        """The figure as a reader sees it: `22%`, `2.3 per child`."""
        number = f"{self.value:,.10g}"
        return f"{number}%" if self.unit == "percent" else f"{number} {self.unit}"

    @property
    def source(self) -> str:
        """Who published it and where: `Department for Education, Children in need: ... (2024)`."""
        return f"{self.publisher}, {self.publication}"

    @property
    def heading(self) -> str:
        """The column heading beside the local figure: `England 2023/24`."""
        return f"England {self.period}"


def load_england_figures(path: Path = FIGURES_FILE) -> dict[str, EnglandFigure]:
    """Read and check the figures file; raises EnglandFiguresError listing every problem."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise EnglandFiguresError(source, [f"{source}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise EnglandFiguresError(source, [f"{source}: cannot be read ({exc})"]) from None
    return parse_england_figures(text, source=source)


def parse_england_figures(text: str, *, source: str = "England figures") -> dict[str, EnglandFigure]:
    """Figures by measure id from TOML text: one table per measure, named by the measure id."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise EnglandFiguresError(source, [f"{source}: not valid TOML ({exc})"]) from None
    figures: dict[str, EnglandFigure] = {}
    problems: list[str] = []
    for measure, table in data.items():
        where = f"{source}: [{measure}]"
        if not _MEASURE.fullmatch(measure):
            problems.append(f"{where}: a measure id is lower-case letters, digits and _, starting with a letter")
        elif not isinstance(table, dict):
            problems.append(f"{where}: expected a table ([{measure}] then label = ..., value = ..., ...)")
        elif "measure" in table:
            problems.append(f"{where}: measure: the table's name is the measure id; leave this key out")
        else:
            try:
                figures[measure] = EnglandFigure(measure=measure, **table)
            except ValidationError as exc:
                problems += [_describe(where, error) for error in exc.errors()]
    if not figures and not problems:
        problems.append(f"{source}: no figures (one [measure_id] table per published England figure)")
    if problems:
        raise EnglandFiguresError(source, problems)
    return figures


def _describe(where: str, error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error["loc"])
    kind, got = error["type"], error["input"]
    if kind == "extra_forbidden":
        valid = ", ".join(name for name in EnglandFigure.model_fields if name != "measure")
        return f"{where}: {field}: unknown key; valid keys: {valid}"
    message = _MESSAGES.get(kind) or error["msg"].removeprefix("Value error, ")
    if not field:  # a check across fields names its field itself
        return f"{where}: {message}"
    return f"{where}: {field}: {message}" + ("" if kind == "missing" else f" (got {_short(got)})")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
