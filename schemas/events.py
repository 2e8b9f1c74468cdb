"""The agency events of the contract (event-contract.md), one pydantic model per `event_type`."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator
from pydantic_core import PydanticCustomError

from schemas.types import (
    AbsenceType,
    AgencyCode,
    AgencyType,
    CalendarDate,
    Concern,
    ContactSource,
    DashRisk,
    EventId,
    Flag,
    InterviewStep,
    LaCode,
    Outcome,
    PlanCategory,
    PrimaryNeed,
    Pseudonym,
    RiskLevel,
    Route,
    SchemaVersion1,
    SourceId,
    Timestamp,
    WholeNumber,
)

SCHEMA_VERSION = 1


class ContractModel(BaseModel):
    """Frozen, and unknown fields are refused: a misspelt optional field must not vanish silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Envelope(ContractModel):
    """Fields every agency event carries."""

    event_id: EventId
    event_type: str
    schema_version: SchemaVersion1
    la_code: LaCode
    agency_type: AgencyType
    agency_code: AgencyCode
    occurred_at: Timestamp
    recorded_at: Timestamp
    purge: Flag = False

    @model_validator(mode="after")
    def _recorded_after_occurred(self) -> Self:
        # Compare instants: two datetimes sharing one ZoneInfo compare by wall clock, wrong in the repeated hour.
        if self.recorded_at.timestamp() < self.occurred_at.timestamp():
            raise PydanticCustomError(
                "recorded_before_occurred",
                "`recorded_at` ({recorded}) is before `occurred_at` ({occurred}); a source system "
                "cannot record something before it happened",
                {"recorded": self.recorded_at.isoformat(), "occurred": self.occurred_at.isoformat()},
            )
        return self


class ContactReceived(Envelope):
    """A contact about a child reaches the Front Door (Duty and Advice / MASH) or early help."""

    event_type: Literal["contact.received"]
    contact_id: SourceId
    child_id: Pseudonym
    household_id: Pseudonym | None = None
    contact_source: ContactSource
    concerns: Annotated[list[Concern], Field(min_length=1)]
    route: Route | None = None
    linked_incident_id: SourceId | None = None


class ContactDecided(Envelope):
    """The decision on a contact. `referral` and `strategy_discussion` count as referrals."""

    event_type: Literal["contact.decided"]
    contact_id: SourceId
    child_id: Pseudonym
    outcome: Outcome
    primary_need: PrimaryNeed | None = None


class _MissingEpisode(Envelope):
    episode_id: SourceId
    child_id: Pseudonym
    looked_after: Flag
    absence_type: AbsenceType
    risk_level: RiskLevel


class MissingReported(_MissingEpisode):
    """A child is missing or away; `occurred_at` is when the child was last seen."""

    event_type: Literal["missing.reported"]


class MissingFound(_MissingEpisode):
    """The child was found or returned; `occurred_at` is when."""

    event_type: Literal["missing.found"]


class MissingReturnInterview(_MissingEpisode):
    """A step of the return interview; `occurred_at` is when the step happened."""

    event_type: Literal["missing.return_interview"]
    interview: InterviewStep


class IncidentChild(ContractModel):
    """A child of the household; `present` means the child saw or heard the incident."""

    child_id: Pseudonym
    present: Flag
    school_urn: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None


class DomesticIncidentRecorded(Envelope):
    """A police-recorded domestic incident, keyed by household."""

    event_type: Literal["domestic_incident.recorded"]
    incident_id: SourceId
    household_id: Pseudonym
    victim_id: Pseudonym | None = None
    perpetrator_id: Pseudonym | None = None
    dash_risk: DashRisk
    dash_score: Annotated[WholeNumber, Field(ge=0, le=27)] | None = None
    is_crime: Flag
    children: list[IncidentChild]
    marac_referral: Flag = False


class _CpPlan(Envelope):
    plan_id: SourceId
    child_id: Pseudonym
    category: PlanCategory
    previous_plans: Annotated[WholeNumber, Field(ge=0)] | None = None
    previous_plan_ended_at: CalendarDate | None = None


class CpPlanStarted(_CpPlan):
    """A child protection plan starts; `occurred_at` is the start."""

    event_type: Literal["cp_plan.started"]


class CpPlanEnded(_CpPlan):
    """A child protection plan ends; `occurred_at` is the end."""

    event_type: Literal["cp_plan.ended"]


AgencyEvent = Annotated[
    ContactReceived
    | ContactDecided
    | MissingReported
    | MissingFound
    | MissingReturnInterview
    | DomesticIncidentRecorded
    | CpPlanStarted
    | CpPlanEnded,
    Field(discriminator="event_type"),
]
"""Any agency event, selected by `event_type`."""

EVENT_MODELS: dict[str, type[Envelope]] = {
    "contact.received": ContactReceived,
    "contact.decided": ContactDecided,
    "missing.reported": MissingReported,
    "missing.found": MissingFound,
    "missing.return_interview": MissingReturnInterview,
    "domestic_incident.recorded": DomesticIncidentRecorded,
    "cp_plan.started": CpPlanStarted,
    "cp_plan.ended": CpPlanEnded,
}

AGENCY_EVENT_ADAPTER: TypeAdapter[AgencyEvent] = TypeAdapter(AgencyEvent)
