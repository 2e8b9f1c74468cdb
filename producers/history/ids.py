"""Deterministic ids for imported history, so that overlapping years and re-imports add nothing twice.

A referral or a plan is named by what identifies it in every census year that repeats it: the local
authority, the source format, the child's pseudonym, the kind of entity and its date (a referral's date,
a plan's start). Its events' ids are UUIDv5 of that name and the event type; the source record ids
(`contact_id`, `plan_id`) are derived from the name alone. Nothing random and nothing from the file's
layout (the position of a child or a `CINdetails` changes from year to year) goes into them.

A plan's end is keyed by the plan's start, not by the end date: a later year that corrects an end date
re-sends the same `cp_plan.ended` id (downstream keeps one), instead of ending the plan twice. A missing
episode is keyed by its start in the same way, so a later return that adds the end adds only `missing.found`.

The same real-world record gets the same name whichever return it comes from: the SSD's referrals and plans
(`ssd_cin_episodes`, `ssd_cp_plans`, the census's own source tables) are named as the census names them
(`cin`), and its missing episodes (`ssd_missing`, the 903's missing module) as the 903 names them (`903`).
So importing the census and the SSD, or the 903 and the SSD, adds each referral, plan and episode once
when the child's id and the dates agree.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

HISTORY_NAMESPACE = uuid.UUID("5e145321-8f6e-4b80-a967-0c9b6e7cb843")
"""UUIDv5 namespace of imported history; fixed for ever (changing it would re-import everything)."""

Source = Literal["cin", "903", "ssd"]
Entity = Literal["referral", "plan", "missing", "contact"]


def entity_name(
    la_code: str, source: Source, child_id: str, entity: Entity, on: date, qualifier: str | None = None
) -> str:
    """The stable name of one referral, plan, episode or contact: la/source/child pseudonym/entity/date, and
    a qualifier where the date alone does not tell two apart (a missing episode's type and order on its
    day; an SSD contact's record id). Without a qualifier the name is what the CIN import has always used."""
    name = f"{la_code}/{source}/{child_id}/{entity}/{on.isoformat()}"
    return f"{name}/{qualifier}" if qualifier else name


def event_id(name: str, event_type: str) -> str:
    """The event id of one of the entity's events (UUIDv5)."""
    return str(uuid.uuid5(HISTORY_NAMESPACE, f"{name}/{event_type}"))


def record_id(name: str, source: Source, entity: Entity) -> str:
    """The entity's source record id (`contact_id`, `plan_id`), e.g. cin-referral-<uuid>: no identifier in it."""
    return f"{source}-{entity}-{uuid.uuid5(HISTORY_NAMESPACE, name)}"
