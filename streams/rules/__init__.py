"""The rule catalogue of rules.md as pure code: what the Faust worker calls, with all threshold arithmetic.

No I/O, no framework imports, no wall clock: time comes in as arguments. The worker adapts I/O:

    catalogue = load_catalogue(settings.streams.rules_file) if settings.streams.rules_file else Catalogue.default()
    state = decode_state("child", key, table[key]) if key in table else None
    result = evaluate(state, event, raised_at=now, catalogue=catalogue)            # per input (changes state)
    if result.changed:
        table[key] = encode_state(result.state)                                    # after its alerts are sent
    clock = clocks[topic, partition].observe(event.occurred_at, wall_clock=now, settings=catalogue.deadlines)
    result = advance(state, clock.reading, now, catalogue, clock_topic=topic)      # for each subject now due

Layout: `definitions/` one module per rule (metadata, params model, its condition), built with `builders`
(window / count rules and deadline rules: cooldown, retention and the window walk derived once); `engine`
(evaluate/advance, cooldown, alert ids, and the arrival-order guarantees in its docstring);
`state`, `history` and `codec` (per-subject working state, one declaration per history kind, and
the compact versioned bytes the tables hold); `clock` (partition clock);
`obligations` (the incident-to-child join input); `catalogue` and `config` (effective parameters).
"""

from streams.rules.catalogue import Catalogue, DeadlineSettings
from streams.rules.clock import PartitionClock
from streams.rules.codec import StateVersionError, decode_state, encode_state
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
    next_deadlines,
    subject_of,
)
from streams.rules.obligations import DaObligation, obligations_from_incident
from streams.rules.state import STATE_VERSION, SubjectState

__all__ = [
    "RULES",
    "RULES_BY_ID",
    "STATE_VERSION",
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
    "StateVersionError",
    "SubjectMismatch",
    "SubjectState",
    "advance",
    "alert_id",
    "catalogue_from_mapping",
    "decode_state",
    "describe_catalogue",
    "encode_state",
    "evaluate",
    "input_id",
    "load_catalogue",
    "next_deadline",
    "next_deadlines",
    "obligations_from_incident",
    "subject_of",
]
