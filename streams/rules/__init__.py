"""The rule catalogue of rules.md as pure code: what the Faust worker calls, with all threshold arithmetic.

No I/O, no framework imports, no wall clock: time comes in as arguments. The worker adapts I/O:

    catalogue = load_catalogue(settings.streams.rules_file) if settings.streams.rules_file else Catalogue.default()
    result = evaluate(table.get(key), event, raised_at=now, catalogue=catalogue)   # per input
    table[key] = result.state                                                      # always store the new state
    clock = clocks[topic, partition].observe(event.occurred_at, wall_clock=now, settings=catalogue.deadlines)
    result = advance(state, clock.reading, now, catalogue, clock_topic=topic)      # for each subject now due

Layout: `definitions/` one module per rule (metadata, params model, pure evaluate); `engine`
(evaluate/advance, cooldown, alert ids, and the arrival-order guarantees in its docstring);
`state` and `history` (per-subject state and how inputs change it); `clock` (partition clock);
`obligations` (the incident-to-child join input); `catalogue` and `config` (effective parameters).
"""

from streams.rules.catalogue import Catalogue, DeadlineSettings
from streams.rules.clock import PartitionClock
from streams.rules.config import (
    CatalogueRow,
    RulesFileError,
    catalogue_from_mapping,
    describe_catalogue,
    load_catalogue,
)
from streams.rules.definition import Finding, RuleDefinition, RuleInput, RuleParams, alert_id
from streams.rules.definitions import RULES, RULES_BY_ID
from streams.rules.durations import Duration, InvalidDuration
from streams.rules.engine import (
    Evaluation,
    Outcome,
    SubjectMismatch,
    advance,
    evaluate,
    input_id,
    next_deadline,
    subject_of,
)
from streams.rules.obligations import DaObligation, obligations_from_incident
from streams.rules.state import SubjectState

__all__ = [
    "RULES",
    "RULES_BY_ID",
    "Catalogue",
    "CatalogueRow",
    "DaObligation",
    "DeadlineSettings",
    "Duration",
    "Evaluation",
    "Finding",
    "InvalidDuration",
    "Outcome",
    "PartitionClock",
    "RuleDefinition",
    "RuleInput",
    "RuleParams",
    "RulesFileError",
    "SubjectMismatch",
    "SubjectState",
    "advance",
    "alert_id",
    "catalogue_from_mapping",
    "describe_catalogue",
    "evaluate",
    "input_id",
    "load_catalogue",
    "next_deadline",
    "obligations_from_incident",
    "subject_of",
]
