"""The gateway's answers (their JSON Schema is in the gateway's OpenAPI document, /openapi.json)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["accepted", "duplicate", "rejected", "not_acknowledged"]


class IssueOut(BaseModel):
    field: str = Field(description="dotted path of the field, empty for the whole event")
    reason: str = Field(description="the broken rule, in the contract's words")
    code: str = Field(description="a short, stable reason code (event-contract.md)")


class EventResult(BaseModel):
    """What happened to one event: accepted (Kafka acknowledged it), duplicate (its event_id was accepted
    before, nothing published), rejected (with every broken rule), or not_acknowledged (Kafka did not
    acknowledge it in time: it may or may not be on the topic; send it again)."""

    index: int = Field(description="position in the request (0 for a single event)")
    status: Status
    event_id: str | None = Field(default=None, description="the event's id, once the event is valid")
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    reason: str | None = Field(default=None, description="why, when not accepted")
    issues: list[IssueOut] = Field(default_factory=list)


class BatchResult(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    not_acknowledged: int
    results: list[EventResult]


class ErrorOut(BaseModel):
    """Any refused request (4xx, 503): a stable code, a reason, and per-event issues where they apply."""

    error: str
    reason: str
    issues: list[IssueOut] = Field(default_factory=list)
    results: list[EventResult] = Field(default_factory=list, description="per-event answers, where there are any")
