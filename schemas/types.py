"""Field types shared by the event, alert and dead-letter models: code lists and checked strings."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, Strict
from pydantic_core import PydanticCustomError

from schemas.identifiers import PSEUDONYM_PATTERN, find_identifiers, is_pseudonym, raw_identifier_kind

AgencyType = Literal["police", "health", "education", "local_authority", "other"]
ContactSource = Literal[
    "1A", "1B", "1C", "1D", "2A", "2B", "3A", "3B", "3C", "3D", "3E", "3F",
    "4", "5A", "5B", "5C", "5D", "6", "7", "8", "9", "10",
]  # fmt: skip
Concern = Literal[
    "domestic_abuse", "neglect", "physical_abuse", "emotional_abuse", "sexual_abuse",
    "exploitation", "missing", "mental_health", "other",
]  # fmt: skip
Route = Literal["front_door", "mash", "duty_and_advice", "early_help"]
Outcome = Literal["nfa", "advice", "early_help", "referral", "strategy_discussion"]
PrimaryNeed = Literal["N0", "N1", "N2", "N3", "N4", "N5", "N6", "N7", "N8", "N9"]
AbsenceType = Literal["missing", "away"]
RiskLevel = Literal["no_apparent_risk", "low", "medium", "high"]
InterviewStep = Literal["offered", "accepted", "declined", "completed"]
DashRisk = Literal["standard", "medium", "high"]
PlanCategory = Literal["NEG", "PHY", "SAB", "EMO", "MUL"]
Severity = Literal["info", "medium", "high", "critical"]
SubjectType = Literal["child", "household"]

REFERRAL_OUTCOMES: frozenset[str] = frozenset({"referral", "strategy_discussion"})


def _pseudonym(value: str) -> str:
    if is_pseudonym(value):
        return value
    kind = raw_identifier_kind(value)
    if kind:
        raise PydanticCustomError(
            "raw_identifier",
            "looks like {kind}; raw identifiers must never be published: pseudonymise it first "
            "(keyed HMAC-SHA256, `safeguard pseudonymise`)",
            {"kind": kind},
        )
    if re.fullmatch(r"[0-9A-Fa-f]{64}", value):
        raise PydanticCustomError("pseudonym_format", "must be lowercase hex (64 characters)")
    raise PydanticCustomError(
        "pseudonym_format",
        "must be a pseudonym: 64 lowercase hex characters, the keyed HMAC-SHA256 of the source "
        "identifier made by the producer toolkit (`safeguard pseudonymise`)",
    )


def _no_identifier_inside(what: str) -> Any:
    def check(value: str) -> str:
        found = find_identifiers(value, context="code")
        if found:
            raise PydanticCustomError(
                "raw_identifier",
                "holds what looks like {kind}; {what} must not carry a personal identifier",
                {"kind": found[0].kind, "what": what},
            )
        return value

    return check


_source_id = _no_identifier_inside("a source record id")


def json_kind(value: Any) -> str:
    """What a JSON value is, in words; used instead of echoing a value that might be personal data."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


# The offset is left to AwareDatetime, whose error for a naive timestamp is the clearer one.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})?$")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _rfc3339_text(value: Any) -> Any:
    """Only an RFC 3339 string (or a datetime, from code): no epoch numbers, as the exported JSON Schema says."""
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.match(value)):
        return value
    got = json_kind(value) if not isinstance(value, str) else "text in another format"
    raise PydanticCustomError(
        "bad_timestamp",
        "must be an RFC 3339 timestamp with an offset, e.g. 2025-03-01T21:15:00+00:00; got {got}",
        {"got": got},
    )


def _iso_date_text(value: Any) -> Any:
    if (isinstance(value, date) and not isinstance(value, datetime)) or (
        isinstance(value, str) and _ISO_DATE.match(value)
    ):
        return value
    got = json_kind(value) if not isinstance(value, str) else "text in another format"
    raise PydanticCustomError("bad_timestamp", "must be an RFC 3339 date, e.g. 2025-03-01; got {got}", {"got": got})


def _exact_int(value: Any) -> Any:
    if type(value) is int:
        return value
    raise PydanticCustomError("wrong_type", "must be a whole number; got {got}", {"got": json_kind(value)})


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _event_uuid(value: str) -> str:
    if _CANONICAL_UUID.fullmatch(value):
        return value  # already as str(uuid.UUID(value)) writes it: the common case, without building a UUID
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise PydanticCustomError(
            "uuid_format", "must be a UUID such as 0b9c1e52-4f7e-4a59-9a55-2f0f7c3d9e11"
        ) from None


Pseudonym = Annotated[
    str,
    Field(
        json_schema_extra={"pattern": PSEUDONYM_PATTERN},
        description="Pseudonym: keyed HMAC-SHA256 of the source identifier, 64 lowercase hex characters.",
    ),
    AfterValidator(_pseudonym),
]
SourceId = Annotated[
    str,
    Field(min_length=1, max_length=100, description="Id of the record in the source system."),
    AfterValidator(_source_id),
]
EventId = Annotated[
    str,
    Field(json_schema_extra={"format": "uuid"}, description="UUID; the idempotency key."),
    AfterValidator(_event_uuid),
]
LaCode = Annotated[str, Field(pattern=r"^[0-9]{3}$", description="DfE local authority code, three digits.")]
AgencyCode = Annotated[
    str,
    Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$",
        description="Short code of the publishing organisation, e.g. WYP, LTHT, LCC.",
    ),
    AfterValidator(_no_identifier_inside("an agency code")),
]
Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_rfc3339_text), Field(description="RFC 3339 timestamp with an offset.")
]
CalendarDate = Annotated[date, BeforeValidator(_iso_date_text), Field(description="RFC 3339 date, e.g. 2025-03-01.")]
Flag = Annotated[bool, Strict()]
"""true or false, exactly: no "yes", no 1 (as the exported JSON Schema says)."""
WholeNumber = Annotated[int, Strict()]
"""A JSON integer, exactly: no "5", no 5.0."""
SchemaVersion1 = Annotated[Literal[1], BeforeValidator(_exact_int)]
IsoDuration = Annotated[
    str,
    Field(
        pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+S)?)?$",
        min_length=3,
        description="ISO 8601 duration, e.g. P90D, P24M, PT72H.",
    ),
]
