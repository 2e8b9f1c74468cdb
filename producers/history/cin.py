"""One census child as contract events: its referrals as contacts decided `referral`, its plans as starts and ends.

Pure: the pseudonymiser, the reference time and the options come in; events and rejections go out.

- each `CINdetails` is a referral: `contact.received` (`contact_source` = ReferralSource, `agency_type`
  from it, concerns from the assessment factors) and `contact.decided` with outcome `referral` (or `nfa`
  for a referral flagged `ReferralNFA` when the options say so), both on the referral date;
- each `ChildProtectionPlans` is a `cp_plan.started` (InitialCategoryOfAbuse, NumberOfPreviousCPP as
  `previous_plans`) and, with an end date, a `cp_plan.ended` (LatestCategoryOfAbuse);
- dates are days: an event happens at local midnight (Europe/London) of its day, and is recorded then;
- ids come from `producers.history.ids`, so a year that repeats a referral or plan repeats its ids.

Every element that gives no event, or loses a field, is a `Rejection` with its positional path. A bad
referral never costs the child's plans, a bad end date never costs the plan's start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Literal, cast

from producers.history.census import CHILD_PATH, CensusChild, CensusPlan, CensusReferral, Value
from producers.history.codes import (
    CATEGORIES,
    PRIMARY_NEEDS,
    Problem,
    concerns,
    known_factor,
    parse_code,
    parse_count,
    parse_date,
    parse_flag,
    shown,
)
from producers.history.emit import Mapped, checked, midnight
from producers.history.ids import entity_name, event_id, record_id
from producers.history.quality import record_breaches
from producers.history.report import Flagged, Rejection
from producers.pseudonymise import Pseudonymiser
from producers.referral_sources import REFERRAL_SOURCES, agency_type
from schemas.events import AgencyEvent
from schemas.limits import DEFAULT_WINDOW, EventTimeWindow
from schemas.quality import Breach, finding, finding_of_fields, value_breaches
from schemas.types import ContactSource

ChildKey = Literal["la_child_id", "upn"]
NfaOutcome = Literal["referral", "nfa"]


@dataclass(frozen=True)
class CinOptions:
    """How a census becomes events, beyond what the file says."""

    agency_code: str = "CIN"
    """`agency_code` of every imported event: the census return, so imported history can be told apart."""
    child_key: ChildKey = "la_child_id"
    """Which identifier the child's pseudonym is made from: the LA's own id (as the LA's live feed) or the UPN."""
    nfa_outcome: NfaOutcome = "referral"
    """A referral flagged ReferralNFA: still a `referral` (as the DfE counts referrals and re-referrals),
    or decided `nfa` (not a referral for the rules)."""


@dataclass
class ChildResult:
    events: list[Mapped] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    unknown_codes: list[tuple[str, int]] = field(default_factory=list)
    findings: list[Flagged] = field(default_factory=list)
    """What the child's elements show by themselves (a code not in the list, a plan ending before it starts)."""
    referrals: int = 0
    plans: int = 0


class CinMapper:
    """Maps the children of one census file (one local authority) to events."""

    def __init__(
        self,
        *,
        file: str,
        la_code: str,
        pseudonymiser: Pseudonymiser,
        reference: datetime,
        window: EventTimeWindow = DEFAULT_WINDOW,
        options: CinOptions = CinOptions(),
    ) -> None:
        self._file = file
        self._la_code = la_code
        self._pseudonymiser = pseudonymiser
        self._reference = reference
        self._window = window
        self._options = options

    @property
    def file(self) -> str:
        return self._file

    def child(self, child: CensusChild) -> ChildResult:
        """The child's events in time order, and what was rejected."""
        result = ChildResult()
        path = f"{CHILD_PATH}[{child.position}]"
        key = child.la_child_id if self._options.child_key == "la_child_id" else child.upn
        element = "LAchildID" if self._options.child_key == "la_child_id" else "UPN"
        unkeyed = f"the child's {len(child.referrals)} referrals and their plans cannot be keyed"
        if key.text is None:
            self._reject(result, f"{path}/ChildIdentifiers/{element}", key.line, "missing", f"no {element}: {unkeyed}")
            return result
        try:
            child_id = self._pseudonymiser.pseudonym(key.text)
        except ValueError:  # nothing but spaces and hyphens
            reason = f"{element} has no letter or digit: {unkeyed}"
            self._reject(result, f"{path}/ChildIdentifiers/{element}", key.line, "missing", reason)
            return result
        for referral in child.referrals:
            self._referral(result, child_id, f"{path}/CINdetails[{referral.position}]", referral)
        result.events.sort(key=lambda m: (m.event.occurred_at.timestamp(), _ORDER[m.event.event_type]))
        return result

    def _referral(self, result: ChildResult, child_id: str, path: str, referral: CensusReferral) -> None:
        on = self._date(result, f"{path}/CINreferralDate", referral.referral_date, required=True)
        source: str | None = None
        breaches: list[Breach] = []
        if referral.source.text is None:
            self._reject(result, f"{path}/ReferralSource", referral.source.line, "missing", "no ReferralSource")
        elif referral.source.text.upper() in REFERRAL_SOURCES:
            source = referral.source.text.upper()
        else:  # 8866: flagged, and imported as source 10 (unknown)
            breaches = value_breaches({"event_type": "contact.received", "contact_source": referral.source.text})
            source = UNKNOWN_SOURCE
        categories = [p.initial_category.text.upper() for p in referral.plans if p.initial_category.text]
        if on is not None and source is not None:
            result.referrals += 1
            received = self._referral_events(result, child_id, path, referral, on, source, categories)
            self._flag(result, breaches, received, f"{path}/ReferralSource", referral.source.line)
        for plan in referral.plans:
            self._plan(result, child_id, f"{path}/ChildProtectionPlans[{plan.position}]", plan)

    def _referral_events(
        self,
        result: ChildResult,
        child_id: str,
        path: str,
        referral: CensusReferral,
        on: date,
        source: str,
        categories: list[str],
    ) -> AgencyEvent | None:
        need = self._code(result, f"{path}/PrimaryNeedCode", referral.primary_need, PRIMARY_NEEDS, "primary need code")
        nfa = parse_flag(referral.nfa.text)
        if isinstance(nfa, Problem):
            self._reject(result, f"{path}/ReferralNFA", referral.nfa.line, nfa.code, f"{nfa.reason}; read as false")
            nfa = False
        factors: list[str] = []
        for factor in referral.factors:
            if factor.text is None:
                continue
            code = factor.text.upper()
            if not known_factor(code):
                result.unknown_codes.append((f"AssessmentFactors {shown(factor.text)} (read as 'other')", factor.line))
            factors.append(code)
        name = entity_name(self._la_code, "cin", child_id, "referral", on)
        contact_id = record_id(name, "cin", "referral")
        at = midnight(on).isoformat()
        where = f"{path}/CINreferralDate"
        received: dict[str, Any] = {
            **self._envelope(name, "contact.received", agency_type(_source(source)), at),
            "contact_id": contact_id,
            "child_id": child_id,
            "contact_source": source,
            "concerns": concerns(factors, categories),
        }
        decided: dict[str, Any] = {
            **self._envelope(name, "contact.decided", "local_authority", at),
            "contact_id": contact_id,
            "child_id": child_id,
            "outcome": "nfa" if nfa and self._options.nfa_outcome == "nfa" else "referral",
        }
        if need is not None:
            decided["primary_need"] = need
        event = self._add(result, received, where, referral.referral_date.line)
        self._add(result, decided, where, referral.referral_date.line)
        return event

    def _plan(self, result: ChildResult, child_id: str, path: str, plan: CensusPlan) -> None:
        start = self._date(result, f"{path}/CPPstartDate", plan.start, required=True)
        initial, initial_breaches = self._category(plan.initial_category, "cp_plan.started")
        latest, latest_breaches = self._category(plan.latest_category, "cp_plan.ended")
        previous = parse_count(plan.previous_plans.text)
        if isinstance(previous, Problem):
            where = f"{path}/NumberOfPreviousCPP"
            self._reject(result, where, plan.previous_plans.line, previous.code, previous.reason)
            previous = None
        category = initial or latest
        initial_at = (f"{path}/InitialCategoryOfAbuse", plan.initial_category.line)
        latest_at = (f"{path}/LatestCategoryOfAbuse", plan.latest_category.line)
        if category is None:
            self._reject(result, path, plan.line, "missing", "no valid category of abuse: the plan is not imported")
        if start is None:
            return
        name = entity_name(self._la_code, "cin", child_id, "plan", start)
        if category is None:
            unfed = {"child_id": child_id, "la_code": self._la_code, "occurred_at": midnight(start).isoformat()}
            for breaches, (where, line) in ((initial_breaches, initial_at), (latest_breaches, latest_at)):
                for breach in breaches:
                    made = finding_of_fields(
                        breach,
                        {**unfed, "event_type": "cp_plan.started"},
                        event_id=event_id(name, "cp_plan.started"),
                        fed=False,
                        found_by="importer",
                        found_at=self._reference,
                    )
                    result.findings.append(Flagged(self._file, where, line, made))
            return
        result.plans += 1
        fields: dict[str, Any] = {"plan_id": record_id(name, "cin", "plan"), "child_id": child_id}
        if previous is not None:
            fields["previous_plans"] = previous
        started = {
            **self._envelope(name, "cp_plan.started", "local_authority", midnight(start).isoformat()),
            **fields,
            "category": category,
        }
        started_event = self._add(result, started, f"{path}/CPPstartDate", plan.start.line)
        self._flag(result, initial_breaches, started_event, *initial_at)
        end = self._date(result, f"{path}/CPPendDate", plan.end, required=False)
        if end is None:
            self._flag(result, latest_breaches, started_event, *latest_at)  # an open plan: the start carries it
            return
        ended = {
            **self._envelope(name, "cp_plan.ended", "local_authority", midnight(end).isoformat()),
            **fields,
            "category": latest or category,
        }
        if end < start and started_event is not None:  # 8925: flagged, and not imported (the plan stays open)
            held = checked(ended, reference=self._reference, window=self._window)
            if not isinstance(held, Problem):
                where = f"{path}/CPPendDate"
                self._flag(result, record_breaches(started_event, held), held, where, plan.end.line, fed=False)
                self._flag(result, latest_breaches, held, *latest_at, fed=False)
                return
        ended_event = self._add(result, ended, f"{path}/CPPendDate", plan.end.line)
        self._flag(result, latest_breaches, ended_event or started_event, *latest_at)

    def _category(self, value: Value, event_type: str) -> tuple[str | None, list[Breach]]:
        """A category of the list, or the 8905/8910 breach of a code not in it (none when absent)."""
        if value.text is None:
            return None, []
        code = value.text.upper()
        if code in CATEGORIES:
            return code, []
        return None, value_breaches({"event_type": event_type, "category": value.text})

    def _flag(
        self,
        result: ChildResult,
        breaches: list[Breach],
        event: AgencyEvent | None,
        path: str,
        line: int,
        *,
        fed: bool = True,
    ) -> None:
        """Findings of `event` (None: it could not be made, and its rejection says why)."""
        if event is None:
            return
        for breach in breaches:
            made = finding(breach, event, fed=fed, found_by="importer", found_at=self._reference)
            result.findings.append(Flagged(self._file, path, line, made))

    def _envelope(self, name: str, event_type: str, agency: str, at: str) -> dict[str, Any]:
        return {
            "event_id": event_id(name, event_type),
            "event_type": event_type,
            "schema_version": 1,
            "la_code": self._la_code,
            "agency_type": agency,
            "agency_code": self._options.agency_code,
            "occurred_at": at,
            "recorded_at": at,
        }

    def _add(self, result: ChildResult, fields: dict[str, Any], path: str, line: int) -> AgencyEvent | None:
        """Validate as every producer does (the contract's models and limits, the event-time window)."""
        event = checked(fields, reference=self._reference, window=self._window)
        if isinstance(event, Problem):
            self._reject(result, path, line, event.code, event.reason)
            return None
        result.events.append(Mapped(event, path, line))
        return event

    def _date(self, result: ChildResult, path: str, value: Value, *, required: bool) -> date | None:
        parsed = parse_date(value.text)
        if isinstance(parsed, Problem):
            consequence = "the element gives no event" if required else "the plan is imported as still open"
            self._reject(result, path, value.line, parsed.code, f"{parsed.reason}; {consequence}")
            return None
        if parsed is None and required:
            self._reject(result, path, value.line, "missing", "missing; the element gives no event")
        return parsed

    def _code(self, result: ChildResult, path: str, value: Value, codes: frozenset[str], what: str) -> str | None:
        parsed = parse_code(value.text, codes, what)
        if isinstance(parsed, Problem):
            self._reject(result, path, value.line, parsed.code, parsed.reason)
            return None
        return parsed

    def _reject(self, result: ChildResult, path: str, line: int, code: str, reason: str) -> None:
        rejection = Rejection(self._file, path, line, code, reason)
        if rejection not in result.rejections:  # a referral's two events break the same rule once
            result.rejections.append(rejection)


UNKNOWN_SOURCE = "10"
"""The CIN referral source 'unknown': what a referral whose source is not a valid code is imported with (8866)."""

_ORDER = {"contact.received": 0, "contact.decided": 1, "cp_plan.started": 2, "cp_plan.ended": 3}


def _source(code: str) -> ContactSource:
    """A code `parse_code` took from REFERRAL_SOURCES, typed as the contract's list."""
    return cast(ContactSource, code)
