"""Standard Safeguarding Dataset (SSD, Data to Insight) extract tables, as CSV, to contract events.

The SSD is one SQL extract an LA runs on its own case system, about six years back. Four of its tables give
events (column names of `data-to-insight/ssd-data-model`, `data/objects/ssd_*.yml`; other spellings that
earlier releases used are taken too, see `Column.aliases`):

- `ssd_contacts`: every contact is a `contact.received` (`cont_contact_source_code`, `agency_type` from it);
  its outcome (`cont_contact_outcome_json`, flags Y/N) decides it: `CP_ENQUIRY_FLAG` strategy discussion,
  `NEW_REFERRAL_FLAG` referral, `NFA_FLAG` nfa, `ADVICE_FLAG` advice; any other outcome (an existing
  referral, other) leaves it undecided, as the contract has no outcome for it;
- `ssd_cin_episodes`: each referral is a `contact.received` and a `contact.decided` `referral` (strategy
  discussion when its outcome says so; `cine_referral_nfa` as the census's ReferralNFA);
- `ssd_cp_plans`: `cp_plan.started`, and `cp_plan.ended` once ended (categories written out in words or as
  the census's codes);
- `ssd_missing`: the 903's missing module (`lac.EpisodeMapper`), with the return interview: offered, and then
  accepted or declined.

A contact that became a referral and that referral's `ssd_cin_episodes` row (and the census's `CINdetails`)
are one referral: all three are named as the census names a referral (child, referral day), so they give
the same ids and the import (or the stream) keeps the first (the referral's row is read first). Likewise
`ssd_cp_plans` and `ssd_missing` are named as the census's plans and the 903's episodes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from producers.history.cin import NfaOutcome
from producers.history.codes import (
    CATEGORIES,
    PRIMARY_NEEDS,
    Moment,
    Problem,
    parse_code,
    parse_moment,
    parse_yes_no,
)
from producers.history.emit import local_time
from producers.history.ids import entity_name, event_id, record_id
from producers.history.lac import Episode, EpisodeMapper
from producers.history.tables import Column, Row, TableSpec
from producers.history.tabular import MapperContext, RowMapper, RowResult, TableFile
from producers.referral_sources import REFERRAL_SOURCES, agency_type
from schemas.quality import Breach, value_breaches
from schemas.types import Concern, ContactSource, InterviewStep, Outcome, RiskLevel

CONTACTS = TableSpec(
    "ssd_contacts",
    (
        Column("cont_contact_id", required=True),
        Column("cont_person_id", required=True),
        Column("cont_contact_date", required=True),
        Column("cont_contact_source_code", required=True, aliases=("cont_contact_source",)),
        Column("cont_contact_outcome_json"),
    ),
    unread=frozenset({"cont_contact_source_desc"}),
)
CIN_EPISODES = TableSpec(
    "ssd_cin_episodes",
    (
        Column("cine_person_id", required=True),
        Column("cine_referral_date", required=True),
        Column("cine_referral_source_code", required=True, aliases=("cine_referral_source",)),
        Column("cine_cin_primary_need_code", aliases=("cine_cin_primary_need",)),
        Column("cine_referral_outcome_json"),
        Column("cine_referral_nfa"),
    ),
    unread=frozenset(
        {
            "cine_referral_id",
            "cine_referral_source_desc",
            "cine_close_reason",
            "cine_close_date",
            "cine_referral_team",
            "cine_referral_worker_id",
            "cine_referral_team_name",
            "cine_referral_worker_name",
        }
    ),
)
CP_PLANS = TableSpec(
    "ssd_cp_plans",
    (
        Column("cppl_person_id", required=True),
        Column("cppl_cp_plan_start_date", required=True),
        Column("cppl_cp_plan_end_date"),
        Column("cppl_cp_plan_initial_category", required=True),
        Column("cppl_cp_plan_latest_category"),
    ),
    unread=frozenset({"cppl_cp_plan_id", "cppl_referral_id", "cppl_icpc_id", "cppl_cp_plan_ola"}),
)
MISSING = TableSpec(
    "ssd_missing",
    (
        Column("miss_la_person_id", required=True, aliases=("miss_person_id",)),
        Column("miss_mis_epi_start", required=True, aliases=("miss_missing_episode_start_date",)),
        Column("miss_mis_epi_type", required=True, aliases=("miss_missing_episode_type",)),
        Column("miss_mis_epi_end", aliases=("miss_missing_episode_end_date",)),
        Column("miss_mis_epi_rhi_offered", aliases=("miss_missing_rhi_offered",)),
        Column("miss_mis_epi_rhi_accepted", aliases=("miss_missing_rhi_accepted",)),
    ),
    unread=frozenset({"miss_table_id"}),
)
TABLES: tuple[TableSpec, ...] = (CIN_EPISODES, CONTACTS, CP_PLANS, MISSING)
"""In the order they are read: the referrals first, the authority on a referral (its primary need, a strategy
discussion, NFA), so that a contact decided `referral` on the same day then counts as a duplicate; a contact
whose referral is not in `ssd_cin_episodes` stands in for it."""

CONTACT_OUTCOMES: tuple[tuple[str, Outcome], ...] = (
    ("CP_ENQUIRY_FLAG", "strategy_discussion"),
    ("NEW_REFERRAL_FLAG", "referral"),
    ("NFA_FLAG", "nfa"),
    ("ADVICE_FLAG", "advice"),
)
"""The contact outcome flags the contract has an outcome for, the first set one deciding."""

_CATEGORY_WORDS = {"NEGLECT": "NEG", "PHYSICAL": "PHY", "SEXUAL": "SAB", "EMOTIONAL": "EMO", "MULTIPLE": "MUL"}


@dataclass(frozen=True)
class SsdOptions:
    agency_code: str = "SSD"
    """`agency_code` of every imported event: the extract, so imported history can be told apart."""
    nfa_outcome: NfaOutcome = "referral"
    """A referral flagged `cine_referral_nfa`: a referral as the DfE counts it, or decided `nfa`."""
    risk_level: RiskLevel = "low"
    """The police risk grading the contract requires and the SSD does not hold."""


class SsdMapper(EpisodeMapper):
    """Maps the rows of one SSD table (the table given) to events."""

    def __init__(self, context: MapperContext, options: SsdOptions, table: TableSpec) -> None:
        super().__init__(context, options.risk_level)
        self._options = options
        self._row: Callable[[Row], RowResult] = {
            CONTACTS.name: self._contact,
            CIN_EPISODES.name: self._referral,
            CP_PLANS.name: self._plan,
            MISSING.name: self._missing,
        }[table.name]

    def row(self, row: Row) -> RowResult:
        return self._row(row)

    def _contact(self, row: Row) -> RowResult:
        result = RowResult()
        child_id = self.child(result, row, "cont_person_id")
        at = self._moment(result, row, "cont_contact_date", "the row gives no event", required=True)
        source, source_breaches = self._source(result, row, "cont_contact_source_code")
        flags = self._flags(result, row, "cont_contact_outcome_json")
        record = row.get("cont_contact_id")
        if record is None:
            self.reject(result, row, "cont_contact_id", "missing", "no contact id: the contact cannot be keyed")
        if child_id is None or at is None or source is None or record is None:
            return result
        outcome = next((outcome for flag, outcome in CONTACT_OUTCOMES if flag in flags), None)
        concerns: list[Concern] = ["missing"] if "MISSING_FLAG" in flags else ["other"]
        if outcome in ("referral", "strategy_discussion"):
            name = entity_name(self.context.la_code, "cin", child_id, "referral", at.day)
            contact_id = record_id(name, "cin", "referral")
        else:
            name = entity_name(self.context.la_code, "ssd", child_id, "contact", at.day, record)
            contact_id = record_id(name, "ssd", "contact")
        self._contact_events(result, row, "cont_contact_date", name, contact_id, child_id, at, source, concerns)
        self.flag_event(result, row, "cont_contact_source_code", source_breaches, "contact.received")
        if outcome is not None:
            self._decision(result, row, "cont_contact_date", name, contact_id, child_id, at, outcome, None)
        result.counts = "contacts"
        return result

    def _referral(self, row: Row) -> RowResult:
        result = RowResult()
        child_id = self.child(result, row, "cine_person_id")
        at = self._moment(result, row, "cine_referral_date", "the row gives no event", required=True)
        source, source_breaches = self._source(result, row, "cine_referral_source_code")
        need = parse_code(row.get("cine_cin_primary_need_code"), PRIMARY_NEEDS, "primary need code")
        if isinstance(need, Problem):
            self.reject(result, row, "cine_cin_primary_need_code", need.code, need.reason)
            need = None
        flags = self._flags(result, row, "cine_referral_outcome_json")
        nfa = parse_yes_no(row.get("cine_referral_nfa"))
        if isinstance(nfa, Problem):
            self.reject(result, row, "cine_referral_nfa", nfa.code, f"{nfa.reason}; read as N")
            nfa = None
        if child_id is None or at is None or source is None:
            return result
        outcome: Outcome = "strategy_discussion" if "STRATEGY_DISCUSSION_FLAG" in flags else "referral"
        if nfa and self._options.nfa_outcome == "nfa":
            outcome = "nfa"
        name = entity_name(self.context.la_code, "cin", child_id, "referral", at.day)
        contact_id = record_id(name, "cin", "referral")
        column = "cine_referral_date"
        self._contact_events(result, row, column, name, contact_id, child_id, at, source, ["other"])
        self.flag_event(result, row, "cine_referral_source_code", source_breaches, "contact.received")
        self._decision(result, row, column, name, contact_id, child_id, at, outcome, need)
        result.counts = "referrals"
        return result

    def _plan(self, row: Row) -> RowResult:
        result = RowResult()
        child_id = self.child(result, row, "cppl_person_id")
        start = self._moment(result, row, "cppl_cp_plan_start_date", "the row gives no event", required=True)
        end = self._moment(result, row, "cppl_cp_plan_end_date", "the plan is imported as still open")
        initial, initial_breaches = self._category(row, "cppl_cp_plan_initial_category", "cp_plan.started")
        latest, latest_breaches = self._category(row, "cppl_cp_plan_latest_category", "cp_plan.ended")
        category = initial or latest
        if category is None:
            reason = "no valid category of abuse: the plan is not imported"
            self.reject(result, row, "cppl_cp_plan_initial_category", "missing", reason)
        if child_id is None or start is None:
            return result
        name = entity_name(self.context.la_code, "cin", child_id, "plan", start.day)
        if category is None:
            unfed = {
                "event_type": "cp_plan.started",
                "child_id": child_id,
                "la_code": self.context.la_code,
                "occurred_at": local_time(start).isoformat(),
            }
            made_id = event_id(name, "cp_plan.started")
            self.flag_fields(result, row, "cppl_cp_plan_initial_category", initial_breaches, unfed, made_id)
            self.flag_fields(result, row, "cppl_cp_plan_latest_category", latest_breaches, unfed, made_id)
            return result
        fields = {"plan_id": record_id(name, "cin", "plan"), "child_id": child_id}
        started_at = local_time(start)
        started = {
            **self.envelope(name, "cp_plan.started", "local_authority", started_at),
            **fields,
            "category": category,
        }
        if self.add(result, started, row, "cppl_cp_plan_start_date"):
            result.counts = "plans"
        self.flag_event(result, row, "cppl_cp_plan_initial_category", initial_breaches, "cp_plan.started")
        if end is None:
            self.flag_event(result, row, "cppl_cp_plan_latest_category", latest_breaches, "cp_plan.started")
            return result
        ended_at = local_time(end)
        ended = {
            **self.envelope(name, "cp_plan.ended", "local_authority", ended_at),
            **fields,
            "category": latest or category,
        }
        if ended_at < started_at and self.held_back(result, row, "cppl_cp_plan_end_date", started, ended):
            self.flag_event(result, row, "cppl_cp_plan_latest_category", latest_breaches, "cp_plan.started")
            return result  # 8925: flagged, and the plan imported as still open
        self.add(result, ended, row, "cppl_cp_plan_end_date")
        self.flag_event(result, row, "cppl_cp_plan_latest_category", latest_breaches, "cp_plan.ended")
        return result

    def _missing(self, row: Row) -> RowResult:
        result = RowResult()
        child_id = self.child(result, row, "miss_la_person_id")
        absence = self.absence(result, row, "miss_mis_epi_type")
        start = self._moment(result, row, "miss_mis_epi_start", "the row gives no event", required=True)
        end = self._moment(result, row, "miss_mis_epi_end", "imported as still open")
        offered = self._yes_no(result, row, "miss_mis_epi_rhi_offered")
        accepted = self._yes_no(result, row, "miss_mis_epi_rhi_accepted")
        if absence is None and child_id is not None and start is not None:
            self.flag_absence(result, row, "miss_mis_epi_type", child_id, start.day, local_time(start))
        if child_id is None or absence is None or start is None:
            return result
        started, ended = local_time(start), local_time(end) if end is not None else None
        steps: tuple[InterviewStep, ...] = ()
        if accepted:  # an interview accepted was offered, whatever the offered column says
            steps = ("offered", "accepted")
        elif offered:
            steps = ("offered", "declined") if accepted is False else ("offered",)
        if steps and ended is None:
            result.notes.append(("ssd_missing: a return interview of an episode not ended (not imported)", row.line))
            steps = ()
        episode = Episode(
            child_id,
            absence[0],
            absence[1],
            start.day,
            started,
            ended,
            "miss_mis_epi_start",
            "miss_mis_epi_end",
            steps,
            "miss_mis_epi_rhi_offered",
        )
        self.episode(result, row, episode)
        return result

    def _contact_events(
        self,
        result: RowResult,
        row: Row,
        column: str,
        name: str,
        contact_id: str,
        child_id: str,
        at: Moment,
        source: ContactSource,
        concerns: list[Concern],
    ) -> None:
        received = {
            **self.envelope(name, "contact.received", agency_type(source), local_time(at)),
            "contact_id": contact_id,
            "child_id": child_id,
            "contact_source": source,
            "concerns": concerns,
        }
        self.add(result, received, row, column)

    def _decision(
        self,
        result: RowResult,
        row: Row,
        column: str,
        name: str,
        contact_id: str,
        child_id: str,
        at: Moment,
        outcome: Outcome,
        need: str | None,
    ) -> None:
        decided: dict[str, Any] = {
            **self.envelope(name, "contact.decided", "local_authority", local_time(at)),
            "contact_id": contact_id,
            "child_id": child_id,
            "outcome": outcome,
        }
        if need is not None:
            decided["primary_need"] = need
        self.add(result, decided, row, column)

    def _moment(
        self, result: RowResult, row: Row, column: str, consequence: str, *, required: bool = False
    ) -> Moment | None:
        parsed = parse_moment(row.get(column))
        if isinstance(parsed, Problem):
            self.reject(result, row, column, parsed.code, f"{parsed.reason}; {consequence}")
            return None
        if parsed is None and required:
            self.reject(result, row, column, "missing", f"no {column}; {consequence}")
        return parsed

    def _source(self, result: RowResult, row: Row, column: str) -> tuple[ContactSource | None, list[Breach]]:
        """The referral source, or `10` (unknown) with the 8866 breach of a code not in the list."""
        text = row.get(column)
        if text is None:
            self.reject(result, row, column, "missing", "no source: the row gives no event")
            return None, []
        parsed = parse_code(text, REFERRAL_SOURCES, "CIN referral source")
        if isinstance(parsed, Problem):
            return "10", value_breaches({"event_type": "contact.received", "contact_source": text})
        return cast(ContactSource, parsed), []

    def _category(self, row: Row, column: str, event_type: str) -> tuple[str | None, list[Breach]]:
        """A category (code or the SSD's words), or the 8905/8910 breach of one not in the list."""
        text = row.get(column)
        if text is None:
            return None, []
        upper = text.upper()
        if upper in CATEGORIES:
            return upper, []
        word = upper.replace(":", " ").split()[0] if upper.strip(" :") else ""
        if word in _CATEGORY_WORDS:
            return _CATEGORY_WORDS[word], []
        return None, value_breaches({"event_type": event_type, "category": text})

    def _flags(self, result: RowResult, row: Row, column: str) -> frozenset[str]:
        """The outcome flags set (Y) in an SSD outcome JSON object; none when absent or not read."""
        text = row.get(column)
        if text is None:
            return frozenset()
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            reason = "not a JSON object of outcome flags: read as no outcome"
            self.reject(result, row, column, "bad_json", reason)
            return frozenset()
        return frozenset(key.upper() for key, flag in value.items() if _flag_set(flag))

    def _yes_no(self, result: RowResult, row: Row, column: str) -> bool | None:
        parsed = parse_yes_no(row.get(column))
        if isinstance(parsed, Problem):
            self.reject(result, row, column, parsed.code, f"{parsed.reason}; read as not known")
            return None
        return parsed


def _flag_set(flag: object) -> bool:
    if isinstance(flag, bool):
        return flag
    if isinstance(flag, int):
        return flag == 1
    return isinstance(flag, str) and parse_yes_no(flag.strip() or None) is True


@dataclass(frozen=True)
class SsdDirectory:
    """The tables found in an extract's directory, and what was not found or not read."""

    tables: list[TableFile]
    absent: list[str]
    not_read: list[str]


def ssd_tables(directory: Path, options: SsdOptions) -> SsdDirectory:
    """The extract's four tables (`<table>.csv`, any case), in reading order; other files are listed, not read."""
    files = {path.name.lower(): path for path in sorted(directory.iterdir()) if path.is_file()}
    tables: list[TableFile] = []
    absent: list[str] = []
    for spec in TABLES:
        path = files.pop(f"{spec.name}.csv", None)
        if path is None:
            absent.append(spec.name)
            continue
        tables.append(TableFile(path, spec, _mapper(options, spec)))
    return SsdDirectory(tables, absent, sorted(path.name for path in files.values()))


def _mapper(options: SsdOptions, spec: TableSpec) -> Callable[[MapperContext], RowMapper]:
    def make(context: MapperContext) -> RowMapper:
        return SsdMapper(context, options, spec)

    return make
