"""The "incident child obligation": how a domestic incident reaches the state of each child present.

`da_contact_overdue` joins two topics: incidents are keyed by household, contacts by child. The
worker turns each incident into one `DaObligation` per child present and re-keys it by `child_id`
onto an internal stream co-partitioned with the contacts topic, where the child's state records it
as a pending deadline. The contacts topic's partition clock then decides when it is overdue.
"""

from __future__ import annotations

from typing import Literal

from schemas.events import ContractModel, DomesticIncidentRecorded
from schemas.types import EventId, LaCode, Pseudonym, SourceId, Timestamp


class DaObligation(ContractModel):
    """A child was present at a domestic incident: a Front Door contact must follow within the deadline.

    `purge` carries an incident's erasure to the children's states (it removes the obligation).
    """

    event_type: Literal["da_obligation"] = "da_obligation"
    incident_id: SourceId
    child_id: Pseudonym
    household_id: Pseudonym
    occurred_at: Timestamp
    la_code: LaCode
    source_event_id: EventId
    purge: bool = False


def obligations_from_incident(event: DomesticIncidentRecorded) -> list[DaObligation]:
    """One obligation per child present (each child once), in the incident's child order.

    A purge tombstone yields a purge obligation for every child it lists, present or not, so the
    erasure reaches every child state that might hold the incident.
    """
    children = event.children if event.purge else [child for child in event.children if child.present]
    if not children:
        return []
    child_ids = list(dict.fromkeys(child.child_id for child in children))
    # Every field is taken from the incident, which the contract has validated already: the same checks again
    # would find nothing (the obligation's fields have the incident's types), so the model is built directly.
    return [
        DaObligation.model_construct(
            incident_id=event.incident_id,
            child_id=child_id,
            household_id=event.household_id,
            occurred_at=event.occurred_at,
            la_code=event.la_code,
            source_event_id=event.event_id,
            purge=event.purge,
        )
        for child_id in child_ids
    ]
