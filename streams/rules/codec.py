"""The stored form of a `SubjectState`: compact, versioned bytes for the worker's tables and changelogs.

Version 2 (`STATE_VERSION`) is a msgpack array: the version, then the subject's newest event time and each
history as lists of positional fields. Times are epoch microseconds, event and alert ids 16 bytes, pseudonyms
32; the subject's own id is the table key and is not stored again. A Leeds-year child is about a quarter of
its version-1 JSON.

Version 1 (pydantic JSON, up to commit 83c166b) is read and upgraded, so a worker started on an older
changelog carries on. A version newer than this code knows is refused with `StateVersionError`: during a
rolling upgrade an old worker must not guess at a new layout (it stops; the new workers take its partitions).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import msgpack  # type: ignore[import-untyped]

from schemas.errors import SafeguardError
from schemas.types import SubjectType
from streams.rules.state import (
    HISTORY_KINDS,
    NO_RECORDS,
    STATE_VERSION,
    AlertMark,
    ContactRecord,
    DaAnswer,
    DaContactDuty,
    HistoryKind,
    IncidentRecord,
    MissingReport,
    PlanRecord,
    ReferralRecord,
    ReturnInterviewDuty,
    SeenEvent,
    SubjectState,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class StateVersionError(SafeguardError):
    """A stored state this code cannot read: written by a newer version, or not a state at all."""


# --- field packers: each has its exact inverse below -----------------------------------------------


def _t(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - _EPOCH) // _MICROSECOND


def _from_t(value: int | None) -> datetime | None:
    return None if value is None else _EPOCH + timedelta(microseconds=value)


def _at(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


_PACKED_IDS: dict[str | None, bytes | str | None] = {}
_PACKED_IDS_HELD = 1 << 17
"""Event ids packed lately: a state is written again after each batch that changed it, its ids mostly unchanged."""


def _uuid(text: str | None) -> bytes | str | None:
    """`_pack_uuid`, remembered for the ids packed lately (bounded: forgotten all at once when full)."""
    try:
        return _PACKED_IDS[text]
    except KeyError:
        if len(_PACKED_IDS) >= _PACKED_IDS_HELD:
            _PACKED_IDS.clear()
        packed = _PACKED_IDS[text] = _pack_uuid(text)
        return packed


def _pack_uuid(text: str | None) -> bytes | str | None:
    """A canonical UUID (lowercase, dashed, as the contract writes event ids) as its 16 bytes; anything else as
    it is. Decoded back exactly either way."""
    if (
        text is None
        or len(text) != 36
        or text[8] != "-"
        or text[13] != "-"
        or text[18] != "-"
        or text[23] != "-"
        or text != text.lower()
    ):
        return text
    try:
        packed = bytes.fromhex(text.replace("-", ""))
    except ValueError:
        return text
    return packed if len(packed) == 16 else text


def _from_uuid(value: bytes | str | None) -> str | None:
    if not isinstance(value, bytes):
        return value
    h = value.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hex(text: str | None) -> bytes | str | None:
    """Lowercase hex (alert ids, pseudonyms) as bytes; anything else as it is."""
    if text is None or len(text) % 2:
        return text
    try:
        packed = bytes.fromhex(text)
    except ValueError:
        return text
    return packed if packed.hex() == text else text


def _from_hex(value: bytes | str | None) -> str | None:
    return value.hex() if isinstance(value, bytes) else value


def _day(value: date | None) -> int | None:
    return None if value is None else value.toordinal()


def _from_day(value: int | None) -> date | None:
    return None if value is None else date.fromordinal(value)


# --- version 2 -------------------------------------------------------------------------------------


def encode_state(state: SubjectState) -> bytes:
    """The state as version-2 bytes (what the tables hold)."""
    u, t, epoch, us, none = _uuid, _t, _EPOCH, _MICROSECOND, _NOTHING
    known = _PACKED_IDS.get  # ids packed lately, looked up inline (what `_uuid` would answer)
    layout = (
        STATE_VERSION,
        t(state.newest_event_at),
        [((known(e) or u(e)), at) for e, at in zip(state.seen_ids, state.seen_micros, strict=True)]
        if state.seen_ids
        else none,
        sorted(state.erased) if state.erased else none,
        [
            (
                (known(r.event_id) or u(r.event_id)),
                (r.occurred_at - epoch) // us,
                r.la_code,
                r.episode_id,
                r.looked_after,
                r.absence_type,
                r.risk_level,
            )
            for r in state.missing_reports
        ]
        if state.missing_reports
        else none,
        [
            (d.episode_id, d.la_code, u(d.found_event_id), t(d.found_at), d.looked_after, t(d.interviewed_at))
            for d in state.return_interviews
        ]
        if state.return_interviews
        else none,
        [
            (
                p.plan_id,
                p.la_code,
                u(p.start_event_id),
                t(p.started_at),
                u(p.end_event_id),
                t(p.ended_at),
                p.previous_plans,
                _day(p.previous_plan_ended_at),
            )
            for p in state.plans
        ]
        if state.plans
        else none,
        [
            ((known(r.event_id) or u(r.event_id)), (r.occurred_at - epoch) // us, r.la_code, r.contact_id, r.outcome)
            for r in state.referrals
        ]
        if state.referrals
        else none,
        [
            (
                (known(c.event_id) or u(c.event_id)),
                (c.occurred_at - epoch) // us,
                c.la_code,
                c.contact_id,
                c.agency_type,
            )
            for c in state.contacts
        ]
        if state.contacts
        else none,
        [
            (
                d.incident_id,
                u(d.obligation_event_id),
                t(d.incident_at),
                _hex(d.household_id),
                d.la_code,
                [
                    ((known(a.event_id) or u(a.event_id)), a.contact_id, (a.occurred_at - epoch) // us)
                    for a in d.answers
                ],
            )
            for d in state.da_contacts
        ]
        if state.da_contacts
        else none,
        [
            (
                (known(i.event_id) or u(i.event_id)),
                (i.occurred_at - epoch) // us,
                i.la_code,
                i.incident_id,
                i.marac_referral,
                i.dash_risk,
            )
            for i in state.incidents
        ]
        if state.incidents
        else none,
        [(m.rule_id, _hex(m.alert_id), (m.triggered_at - epoch) // us, m.entity) for m in state.alerts]
        if state.alerts
        else none,
    )
    packed: bytes = msgpack.packb(layout, use_bin_type=True)  # tuples are packed as arrays, as lists are
    return packed


_NOTHING: tuple[()] = ()
"""An empty part of the layout (packed as an empty array)."""


def decode_state(subject_type: SubjectType, subject_id: str, stored: bytes | dict[str, Any]) -> SubjectState:
    """The state stored under `subject_id` in that subject type's table, whichever version wrote it.

    Raises `StateVersionError` for a version newer than this code, or for bytes that are no state.
    """
    if isinstance(stored, dict):
        return _from_v1(subject_type, subject_id, stored)
    if stored[:1] == b"{":
        try:
            obj = json.loads(stored)
        except ValueError as exc:
            raise StateVersionError(f"stored state of {subject_type} {subject_id[:8]}… is not valid JSON") from exc
        return _from_v1(subject_type, subject_id, obj)
    try:
        layout = msgpack.unpackb(stored, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise StateVersionError(f"stored state of {subject_type} {subject_id[:8]}… cannot be read: {exc}") from exc
    if not isinstance(layout, list) or not layout or not isinstance(layout[0], int):
        raise StateVersionError(f"stored state of {subject_type} {subject_id[:8]}… has no state version")
    version = layout[0]
    if version > STATE_VERSION:
        raise StateVersionError(
            f"the state of {subject_type} {subject_id[:8]}… was written by a newer worker (state version {version}); "
            f"this worker reads versions 1 to {STATE_VERSION}. Finish the upgrade: run the newer version on every "
            "worker of the group (an older worker stops rather than guess)."
        )
    if version != STATE_VERSION:
        raise StateVersionError(f"stored state of {subject_type} {subject_id[:8]}… has unknown version {version}")
    return _from_v2(subject_type, subject_id, layout)


_V2_POSITION: dict[str, int] = {kind: 4 + i for i, kind in enumerate(HISTORY_KINDS)}
"""Where each history kind sits in a version-2 layout (after version, newest, seen and erased)."""


def holds_any(stored: bytes | dict[str, Any], kinds: tuple[HistoryKind, ...]) -> bool:
    """True when the stored state may hold a record of one of `kinds`, without decoding it into a `SubjectState`.

    What a restarted worker asks of every stored state to rebuild its deadline index: most subjects hold no
    duty at all, and reading the layout is about a tenth of decoding it. Anything but a readable version-2
    state answers True, so `decode_state` decides (and upgrades or refuses it).
    """
    if not kinds:
        return False
    if not isinstance(stored, bytes | bytearray | memoryview) or stored[:1] == b"{":
        return True
    try:
        layout = msgpack.unpackb(stored, raw=False, strict_map_key=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        return True
    if not isinstance(layout, list) or len(layout) != 12 or layout[0] != STATE_VERSION:
        return True
    return any(layout[_V2_POSITION[kind]] for kind in kinds)


def _from_v2(subject_type: SubjectType, subject_id: str, layout: list[Any]) -> SubjectState:
    u, t = _from_uuid, _from_t
    _, newest, seen, erased, missing, interviews, plans, referrals, contacts, da, incidents, marks = layout
    state = SubjectState(subject_type, subject_id, newest_event_at=t(newest), erased=erased)
    # Stored in order: the lists are taken as they are, without sorting again.
    state.set_seen([u(e) for e, _ in seen], [at for _, at in seen])  # type: ignore[misc]
    state.missing_reports = [MissingReport(u(e), _at(at), *rest) for e, at, *rest in missing]  # type: ignore[arg-type]
    state.return_interviews = [
        ReturnInterviewDuty(episode, la, u(found_id), t(found_at), looked_after, t(interviewed))
        for episode, la, found_id, found_at, looked_after, interviewed in interviews
    ]
    state.plans = [
        PlanRecord(plan, la, u(start_id), t(start), u(end_id), t(end), previous, _from_day(previous_end))
        for plan, la, start_id, start, end_id, end, previous, previous_end in plans
    ]
    state.referrals = [ReferralRecord(u(e), _at(at), *rest) for e, at, *rest in referrals]  # type: ignore[arg-type]
    state.contacts = [ContactRecord(u(e), _at(at), *rest) for e, at, *rest in contacts]  # type: ignore[arg-type]
    state.da_contacts = [
        DaContactDuty(
            incident,
            u(obligation),
            t(at),
            _from_hex(household),
            la,
            tuple(DaAnswer(u(e), contact, _at(when)) for e, contact, when in answers),  # type: ignore[arg-type]
        )
        for incident, obligation, at, household, la, answers in da
    ]
    state.incidents = [IncidentRecord(u(e), _at(at), *rest) for e, at, *rest in incidents]  # type: ignore[arg-type]
    state.alerts = [
        AlertMark(rule, _from_hex(alert), _at(at), entity)  # type: ignore[arg-type]
        for rule, alert, at, entity in marks
    ]
    for kind in _LISTS:
        if not getattr(state, kind):
            setattr(state, kind, NO_RECORDS)  # the shared empty history
    return state


_LISTS = (*HISTORY_KINDS, "alerts")


# --- version 1: the pydantic JSON of earlier releases ----------------------------------------------


def _iso(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _iso_day(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _iso_at(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _from_v1(subject_type: SubjectType, subject_id: str, obj: dict[str, Any]) -> SubjectState:
    """Upgrade a version-1 state (`SubjectState.model_dump(mode="json", exclude_defaults=True)`)."""
    try:
        if (obj.get("subject_type"), obj.get("subject_id")) != (subject_type, subject_id):
            raise StateVersionError(f"stored state under {subject_type} {subject_id[:8]}… is another subject's")
        return SubjectState(
            subject_type,
            subject_id,
            newest_event_at=_iso(obj.get("newest_event_at")),
            seen=[SeenEvent(s["event_id"], _iso_at(s["occurred_at"])) for s in obj.get("seen", ())],
            erased=obj.get("erased", ()),
            missing_reports=[
                MissingReport(
                    r["event_id"],
                    _iso_at(r["occurred_at"]),
                    r["la_code"],
                    r["episode_id"],
                    r["looked_after"],
                    r["absence_type"],
                    r["risk_level"],
                )
                for r in obj.get("missing_reports", ())
            ],
            return_interviews=[
                ReturnInterviewDuty(
                    d["episode_id"],
                    d.get("la_code"),
                    d.get("found_event_id"),
                    _iso(d.get("found_at")),
                    d.get("looked_after", False),
                    _iso(d.get("interviewed_at")),
                )
                for d in obj.get("return_interviews", ())
            ],
            plans=[
                PlanRecord(
                    p["plan_id"],
                    p["la_code"],
                    p.get("start_event_id"),
                    _iso(p.get("started_at")),
                    p.get("end_event_id"),
                    _iso(p.get("ended_at")),
                    p.get("previous_plans"),
                    None
                    if p.get("previous_plan_ended_at") is None
                    else date.fromisoformat(p["previous_plan_ended_at"]),
                )
                for p in obj.get("plans", ())
            ],
            referrals=[
                ReferralRecord(r["event_id"], _iso_at(r["occurred_at"]), r["la_code"], r["contact_id"], r["outcome"])
                for r in obj.get("referrals", ())
            ],
            contacts=[
                ContactRecord(c["event_id"], _iso_at(c["occurred_at"]), c["la_code"], c["contact_id"], c["agency_type"])
                for c in obj.get("contacts", ())
            ],
            da_contacts=[
                DaContactDuty(
                    d["incident_id"],
                    d.get("obligation_event_id"),
                    _iso(d.get("incident_at")),
                    d.get("household_id"),
                    d.get("la_code"),
                    tuple(
                        DaAnswer(a["event_id"], a["contact_id"], _iso_at(a["occurred_at"]))
                        for a in d.get("answers", ())
                    ),
                )
                for d in obj.get("da_contacts", ())
            ],
            incidents=[
                IncidentRecord(
                    i["event_id"],
                    _iso_at(i["occurred_at"]),
                    i["la_code"],
                    i["incident_id"],
                    i["marac_referral"],
                    i["dash_risk"],
                )
                for i in obj.get("incidents", ())
            ],
            alerts=[
                AlertMark(m["rule_id"], m["alert_id"], _iso_at(m["triggered_at"]), m.get("entity"))
                for m in obj.get("alerts", ())
            ],
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise StateVersionError(
            f"stored version-1 state of {subject_type} {subject_id[:8]}… cannot be read: {type(exc).__name__}"
        ) from exc
