"""The effective rule catalogue of one partnership: every rule's parameters, and the deadline clock settings.

`Catalogue.default()` is rules.md as written; `streams.rules.config.load_catalogue` applies a
partnership's rules file on top. The catalogue also answers the questions the engine asks about
history: which kinds to record, how long to keep them, and the subject's horizon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Annotated, Any, NamedTuple

from pydantic import AfterValidator, Field

from schemas.types import SubjectType
from streams.rules.definition import P, ParamsModel, PositiveDuration, RuleDefinition, RuleParams
from streams.rules.definitions import RULES, rules_by_id
from streams.rules.durations import Duration, longest
from streams.rules.history import HISTORY, HistorySpec
from streams.rules.state import HISTORY_KINDS, HistoryKind


def _exact(value: Duration) -> Duration:
    if value.calendar_months:
        raise ValueError("must be a fixed length of time (days, hours, minutes), not months or years")
    return value


class DeadlineSettings(ParamsModel):
    """The live rule of the partition clock (rules.md "Deadline rules")."""

    allowed_lateness: Annotated[Duration, AfterValidator(_exact)] = Field(
        default=Duration(minutes=10), description="live clock = wall clock minus this, so late events still count"
    )
    live_horizon: PositiveDuration = Field(
        default=Duration(days=1), description="newest event time must be this close to the wall clock to run live"
    )
    max_lead: Annotated[Duration, AfterValidator(_exact)] = Field(
        default=Duration(minutes=15),
        description="a clock never runs further than this ahead of the wall clock, whatever an event says",
    )


class InputPlan(NamedTuple):
    """`Catalogue.input_plan`: the history kinds an input type feeds, and the rules it runs (with params, cooldown)."""

    feeds: tuple[HistorySpec, ...]
    steps: tuple[tuple[RuleDefinition[Any], RuleParams, Duration | None], ...]
    deadline_kinds: frozenset[HistoryKind]
    """The fed kinds an enabled deadline rule reads: a change to them may move the subject's next deadline."""


@dataclass(frozen=True)
class Catalogue:
    """Effective parameters per rule id, the deadline settings, and where non-default values came from.

    `overridden` holds the dotted keys (`repeat_missing.window`) a rules file set; `source` names that file.
    """

    params: Mapping[str, RuleParams]
    deadlines: DeadlineSettings = field(default_factory=DeadlineSettings)
    source: str | None = None
    overridden: frozenset[str] = frozenset()
    rules: tuple[RuleDefinition[Any], ...] = RULES
    """The rules this catalogue runs, in order: the only registry the engine and the worker read."""
    _by_id: Mapping[str, RuleDefinition[Any]] = field(init=False, repr=False, compare=False)
    _horizons: Mapping[SubjectType, tuple[Duration, ...]] = field(init=False, repr=False, compare=False)
    _kind_retention: Mapping[HistoryKind, tuple[Duration, ...] | None] = field(init=False, repr=False, compare=False)
    _mark_retention: Mapping[SubjectType, Mapping[str, tuple[Duration, ...] | None]] = field(
        init=False, repr=False, compare=False
    )
    _expiry_floor: Mapping[SubjectType, timedelta] = field(init=False, repr=False, compare=False)
    _input_plans: dict[tuple[str, SubjectType], InputPlan] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_id = rules_by_id(self.rules)
        object.__setattr__(self, "rules", tuple(self.rules))
        object.__setattr__(self, "_by_id", MappingProxyType(by_id))
        missing = sorted(set(by_id) - set(self.params))
        unknown = sorted(set(self.params) - set(by_id))
        if missing or unknown:
            raise ValueError(f"catalogue params must cover exactly the rules: missing {missing}, unknown {unknown}")
        for rule_id, params in self.params.items():
            expected = by_id[rule_id].params_model
            if type(params) is not expected:
                raise TypeError(f"{rule_id}: params must be {expected.__name__}, got {type(params).__name__}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))
        horizons = {subject: self._horizon(subject) for subject in ("child", "household")}
        object.__setattr__(self, "_horizons", MappingProxyType(horizons))
        # Derived once: the engine asks these for every event it applies.
        kinds: tuple[HistoryKind, ...] = HISTORY_KINDS
        object.__setattr__(self, "_kind_retention", MappingProxyType({k: self._retention_of(k) for k in kinds}))
        marks = {subject: MappingProxyType(self._marks_of(subject)) for subject in ("child", "household")}
        object.__setattr__(self, "_mark_retention", MappingProxyType(marks))
        floors = {subject: self._shortest_retention(subject) for subject in ("child", "household")}
        object.__setattr__(self, "_expiry_floor", MappingProxyType(floors))
        object.__setattr__(self, "_input_plans", {})

    @classmethod
    def default(cls) -> Catalogue:
        """rules.md as written: every rule enabled with its documented defaults."""
        return cls.of(RULES)

    @classmethod
    def of(cls, rules: tuple[RuleDefinition[Any], ...], deadlines: DeadlineSettings | None = None) -> Catalogue:
        """A catalogue of exactly these rules with their defaults (a partnership's own rule, a test's toy rule)."""
        params = {rule.rule_id: rule.default_params() for rule in rules}
        return cls(params, deadlines or DeadlineSettings(), rules=tuple(rules))

    def with_params(self, rule_id: str, params: RuleParams) -> Catalogue:
        """A copy with one rule's parameters replaced (sources are not tracked for this path)."""
        return Catalogue({**self.params, rule_id: params}, self.deadlines, self.source, self.overridden, self.rules)

    def rule(self, rule_id: str) -> RuleDefinition[Any]:
        """The rule with this id (KeyError if the catalogue has none)."""
        found: RuleDefinition[Any] = self.__dict__["_by_id"][rule_id]
        return found

    def params_for(self, rule: RuleDefinition[P]) -> P:
        params = self.params[rule.rule_id]
        if not isinstance(params, rule.params_model):
            raise TypeError(f"{rule.rule_id}: unexpected params {type(params).__name__}")
        return params

    def is_enabled(self, rule: RuleDefinition[Any]) -> bool:
        return self.params[rule.rule_id].enabled

    def rules_for(self, input_type: str, subject_type: SubjectType) -> tuple[RuleDefinition[Any], ...]:
        """Enabled rules that read this input type for this kind of subject, in catalogue order."""
        cache: dict[tuple[str, str], tuple[RuleDefinition[Any], ...]] = self.__dict__.setdefault("_rules_for_cache", {})
        found = cache.get((input_type, subject_type))
        if found is None:
            found = cache[(input_type, subject_type)] = self._rules_for(input_type, subject_type)
        return found

    def _rules_for(self, input_type: str, subject_type: SubjectType) -> tuple[RuleDefinition[Any], ...]:
        return tuple(
            rule
            for rule in self.rules
            if self.is_enabled(rule) and rule.subject_type == subject_type and input_type in rule.input_event_types
        )

    def input_plan(self, input_type: str, subject_type: SubjectType) -> InputPlan:
        """What the engine does with an input of this type: the histories it feeds, then each rule to run.

        Derived once per input type: the kinds some enabled rule reads that this input can change, and the
        enabled rules reading it, each with its parameters and effective cooldown.
        """
        plan = self._input_plans.get((input_type, subject_type))
        if plan is None:
            kinds = self.recorded_kinds(subject_type)
            feeds = tuple(spec for spec in HISTORY if spec.kind in kinds and input_type in spec.inputs)
            steps = tuple(
                (rule, self.params_for(rule), rule.cooldown(self.params_for(rule)))
                for rule in self.rules_for(input_type, subject_type)
            )
            deadline_kinds = frozenset(self.deadline_reads(subject_type)) & {spec.kind for spec in feeds}
            plan = self._input_plans[(input_type, subject_type)] = InputPlan(feeds, steps, deadline_kinds)
        return plan

    def earliest_expiry(self, subject_type: SubjectType, moment: datetime) -> datetime:
        """No earlier than anything kept from `moment` on can expire: `moment` plus the shortest retention in use.

        A lower bound, as one addition: a calendar month counts as 27 days (it is never shorter, clamping
        to the month's end included), so pruning may be tried a little early, never late.
        """
        return moment + self._expiry_floor[subject_type]

    def _shortest_retention(self, subject_type: SubjectType) -> timedelta:
        """The shortest span pruning measures with (horizon, window histories, alert marks), months as 27 days."""
        spans = set(self._horizons[subject_type])
        spans.update(
            span for spec in HISTORY if spec.retention == "window" for span in self._kind_retention[spec.kind] or ()
        )
        spans.update(span for marks in self._marks_of(subject_type).values() for span in marks or ())
        return min((timedelta(days=27 * span.calendar_months) + span.exact for span in spans), default=timedelta())

    def deadline_rules(self, clock_topic: str | None, subject_type: SubjectType) -> tuple[RuleDefinition[Any], ...]:
        """Enabled deadline rules driven by this topic's partition clock (None: by any clock)."""
        cache: dict[tuple[str | None, str], tuple[RuleDefinition[Any], ...]] = self.__dict__.setdefault(
            "_deadline_rules_cache", {}
        )
        found = cache.get((clock_topic, subject_type))
        if found is None:
            found = cache[(clock_topic, subject_type)] = self._deadline_rules(clock_topic, subject_type)
        return found

    def _deadline_rules(self, clock_topic: str | None, subject_type: SubjectType) -> tuple[RuleDefinition[Any], ...]:
        return tuple(
            rule
            for rule in self.rules
            if self.is_enabled(rule)
            and rule.subject_type == subject_type
            and rule.deadline is not None
            and clock_topic in (None, rule.deadline.clock_topic)
        )

    def deadline_reads(self, subject_type: SubjectType) -> tuple[HistoryKind, ...]:
        """The history kinds the enabled deadline rules read: a state without any of them has no open duty."""
        cache: dict[str, tuple[HistoryKind, ...]] = self.__dict__.setdefault("_deadline_reads_cache", {})
        found = cache.get(subject_type)
        if found is None:
            rules = self.deadline_rules(None, subject_type)
            found = cache[subject_type] = tuple(k for k in HISTORY_KINDS if any(k in rule.reads for rule in rules))
        return found

    def clock_topics(self, subject_type: SubjectType) -> tuple[str, ...]:
        """The topics whose partition clocks drive some enabled deadline rule on this kind of subject."""
        return tuple(
            dict.fromkeys(
                rule.deadline.clock_topic for rule in self.deadline_rules(None, subject_type) if rule.deadline
            )
        )

    def history(self, subject_type: SubjectType) -> tuple[HistorySpec, ...]:
        """The history kinds to record for this kind of subject (those some enabled rule reads), in declared order."""
        cache: dict[str, tuple[HistorySpec, ...]] = self.__dict__.setdefault("_history_cache", {})
        found = cache.get(subject_type)
        if found is None:
            kinds = self.recorded_kinds(subject_type)
            found = cache[subject_type] = tuple(spec for spec in HISTORY if spec.kind in kinds)
        return found

    def recorded_kinds(self, subject_type: SubjectType) -> frozenset[HistoryKind]:
        """History kinds some enabled rule reads: disabled rules cost no state."""
        return frozenset(
            kind
            for rule in self.rules
            if self.is_enabled(rule) and rule.subject_type == subject_type
            for kind in rule.reads
        )

    def kind_retention(self, kind: HistoryKind) -> tuple[Duration, ...] | None:
        """How long records of this kind are kept (the longest of its readers' needs); None: for ever."""
        return self._kind_retention[kind]

    def mark_retention(self, subject_type: SubjectType) -> Mapping[str, tuple[Duration, ...] | None]:
        """Per rule id: how long an alert mark is kept (horizon + cooldown); None: for ever."""
        return self._mark_retention[subject_type]

    def _marks_of(self, subject_type: SubjectType) -> dict[str, tuple[Duration, ...] | None]:
        horizon = self._horizons[subject_type]
        retention: dict[str, tuple[Duration, ...] | None] = {}
        for rule in self.rules:
            if rule.subject_type != subject_type:
                continue
            cooldown = rule.cooldown(self.params_for(rule)) or Duration()
            retention[rule.rule_id] = (
                None if rule.keeps_history_forever else longest(tuple(h + cooldown for h in horizon))
            )
        return retention

    def _retention_of(self, kind: HistoryKind) -> tuple[Duration, ...] | None:
        readers = [rule for rule in self.rules if kind in rule.reads]
        if any(rule.keeps_history_forever for rule in readers):
            return None
        return longest(tuple(span for rule in readers for span in rule.retention(self.params_for(rule))))

    def horizon(self, subject_type: SubjectType) -> tuple[Duration, ...]:
        """How far back from a subject's newest event its state remembers anything (seen ids, alerts).

        The longest `window + cooldown` of the subject type's rules, enabled or not (so disabling a
        rule never shortens deduplication). An event older than this is too late to apply.
        """
        return self._horizons[subject_type]

    def _horizon(self, subject_type: SubjectType) -> tuple[Duration, ...]:
        spans = {
            span
            for rule in self.rules
            if rule.subject_type == subject_type
            for span in rule.retention(self.params_for(rule))
        }
        return longest(tuple(sorted(spans, key=str)))
