"""The gateway's HTTP application: authenticate, limit, validate, scope, dedupe, publish, answer per event.

Order of checks for every request: the principal (API key or mTLS certificate; 401), the body's size (413)
and time (408), the principal's rate (429), then per event: the contract (the same validation as
`safeguard publish`, the raw-identifier guard included; rejected with field and reason), the principal's
scope (403: nothing of the request is published), the accepted-event index (duplicate), Kafka (accepted
only once acknowledged with acks=all; otherwise 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic_core import from_json
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.dedupe import AcceptedIndex
from gateway.kafka import Ack, GatewayPublisher, NotAcknowledged, Outgoing
from gateway.models import BatchResult, ErrorOut, EventResult, IssueOut
from gateway.principals import Principal, Principals
from gateway.ratelimit import EventRateLimiter
from gateway.scope import scope_issues
from gateway.settings import GatewaySettings
from producers.pseudonymise import Pseudonymiser
from schemas.codec import encode, parse_json_object, validate_event
from schemas.errors import ContractError, DecodeError, Issue
from schemas.events import AGENCY_EVENT_ADAPTER, AgencyEvent
from schemas.identifiers import is_pseudonym
from schemas.limits import DEFAULT_WINDOW, LIMITS, EventTimeWindow, event_time_issues
from schemas.topics import message_key, topic_for

log = logging.getLogger("gateway.access")

PSEUDONYMISABLE = frozenset({"child_id", "household_id", "victim_id", "perpetrator_id"})
NDJSON = "application/x-ndjson"


class Refused(Exception):
    """A request refused as a whole: status, stable code, reason (and issues or per-event results)."""

    def __init__(
        self,
        status: int,
        error: str,
        reason: str,
        *,
        issues: Sequence[Issue] = (),
        results: Sequence[EventResult] = (),
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(reason)
        self.status, self.error, self.reason = status, error, reason
        self.issues, self.results, self.headers = list(issues), list(results), headers or {}


@dataclass
class Gateway:
    """Everything a request needs, built once at the edge (`safeguard gateway run`) or by a test."""

    settings: GatewaySettings
    principals: Callable[[], Principals]
    publisher: GatewayPublisher
    index: AcceptedIndex
    clock: Callable[[], datetime]
    window: EventTimeWindow = DEFAULT_WINDOW
    pseudonymiser: Pseudonymiser | None = None
    limiter: EventRateLimiter | None = None
    _in_flight: dict[str, asyncio.Future[None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = EventRateLimiter(
                rate_per_s=self.settings.rate_events_per_s, burst=self.settings.rate_burst_events
            )


@dataclass
class _Item:
    index: int
    result: EventResult | None = None
    event: AgencyEvent | None = None
    value: bytes = b""
    digest: bytes = b""
    out_of_scope: list[Issue] = field(default_factory=list)


def _issues_out(issues: Sequence[Issue]) -> list[IssueOut]:
    return [IssueOut(field=i.field, reason=i.rule, code=i.code) for i in issues]


def _rejected(index: int, issues: Sequence[Issue], event_id: str | None = None) -> EventResult:
    reason = "; ".join(str(i) for i in issues[:3]) + (f" (and {len(issues) - 3} more)" if len(issues) > 3 else "")
    return EventResult(
        index=index, status="rejected", event_id=event_id, reason=reason or "invalid", issues=_issues_out(issues)
    )


def _error_body(exc: Refused) -> dict[str, Any]:
    return ErrorOut(error=exc.error, reason=exc.reason, issues=_issues_out(exc.issues), results=exc.results).model_dump(
        mode="json", exclude_none=True
    )


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": what}
    for status, what in (
        (400, "a request the gateway cannot take (e.g. pseudonymising not enabled)"),
        (401, "no API key or client certificate, or one that is not valid (unknown, revoked)"),
        (403, "an event outside the principal's scope: nothing of the request is published"),
        (408, "the body took too long to arrive"),
        (413, "the body or the batch is too large"),
        (415, "a content type other than application/json (or application/x-ndjson for a batch)"),
        (422, "the request cannot be read as events"),
        (429, "the principal's rate limit; see Retry-After"),
        (503, "Kafka did not acknowledge (in time); nothing is claimed, see Retry-After"),
    )
}

_FIELD_NAMES = "|".join(sorted(PSEUDONYMISABLE))
_FIELDS_PATTERN = rf"^({_FIELD_NAMES})(,({_FIELD_NAMES}))*$"
_PSEUDONYMISE_QUERY = Query(
    default=None,
    description="comma-separated fields holding raw identifiers for the gateway to pseudonymise with the partnership "
    f"key before validation ({', '.join(sorted(PSEUDONYMISABLE))}; child_id includes an incident's children); "
    "only where the gateway enables it",
    max_length=200,
    pattern=_FIELDS_PATTERN,
)


def create_app(gw: Gateway) -> FastAPI:
    app = FastAPI(
        title="Safeguarding ingestion gateway",
        version="1",
        description="Agency systems post contract events (docs/event-contract.md); each is answered accepted "
        "(published, Kafka acknowledged), duplicate or rejected with its reason. See docs/gateway.md.",
    )
    app.state.gateway = gw

    @app.exception_handler(Refused)
    async def _refused(_request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse(_error_body(exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        body = ErrorOut(error=f"http_{exc.status_code}", reason=str(exc.detail)).model_dump(exclude_none=True)
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
        body = ErrorOut(error="invalid_request", reason="; ".join(parts) or "invalid request")
        return JSONResponse(body.model_dump(exclude_none=True), status_code=422)

    @app.get("/healthz", responses={200: {"description": "the gateway is up"}})
    async def healthz() -> dict[str, str]:
        """Liveness (no authentication, no Kafka round trip)."""
        return {"status": "ok"}

    @app.post(
        "/v1/events",
        response_model=EventResult,
        response_model_exclude_none=True,
        status_code=201,
        responses={
            200: {"model": EventResult, "description": "duplicate: this event_id was accepted before"},
            201: {"model": EventResult, "description": "accepted: on its topic, acknowledged by Kafka"},
            **_ERRORS,
            422: {"model": ErrorOut, "description": "rejected: the event breaks the contract (every issue listed)"},
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgencyEvent"}}},
            }
        },
    )
    async def post_event(request: Request, pseudonymise: str | None = _PSEUDONYMISE_QUERY) -> Response:
        """Publish one event (a JSON object of the contract)."""
        principal = _authenticate(gw, request)
        fields = _pseudonymise_fields(gw, pseudonymise)
        _limit(gw, principal, 1)
        body = await _read_body(gw, request)
        _content_type(request, ("application/json",))
        item = _Item(0)
        try:
            obj = parse_json_object(body)
        except ContractError as exc:
            item.result = _rejected(0, exc.issues)
        else:
            _check(gw, principal, item, obj, fields)
        if item.out_of_scope:
            raise Refused(403, "out_of_scope", "; ".join(map(str, item.out_of_scope)), issues=item.out_of_scope)
        await _dedupe_and_publish(gw, principal, [item])
        result = item.result
        assert result is not None
        request.state.counts = {result.status: 1}
        if result.status == "rejected":
            raise Refused(422, "rejected", result.reason or "invalid", issues=_issues_in(result), results=[result])
        if result.status == "not_acknowledged":
            raise _unavailable(gw, [result])
        payload = result.model_dump(mode="json", exclude_none=True)
        return JSONResponse(payload, status_code=201 if result.status == "accepted" else 200)

    @app.post(
        "/v1/events:batch",
        response_model=BatchResult,
        response_model_exclude_none=True,
        responses={200: {"model": BatchResult, "description": "every event answered"}, **_ERRORS},
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": f"a JSON array of events, or NDJSON ({NDJSON}: one event per line); at most "
                f"{gw.settings.max_batch_events} events",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/AgencyEvent"},
                            "maxItems": gw.settings.max_batch_events,
                        }
                    },
                },
            }
        },
    )
    async def post_batch(request: Request, pseudonymise: str | None = _PSEUDONYMISE_QUERY) -> Response:
        """Publish a batch; each event is answered on its own (a rejected event does not stop the others). Any
        event outside the principal's scope refuses the whole batch (403); if Kafka does not acknowledge every
        accepted event the answer is 503, listing those that are on their topic."""
        principal = _authenticate(gw, request)
        fields = _pseudonymise_fields(gw, pseudonymise)
        body = await _read_body(gw, request)
        kind = _content_type(request, ("application/json", NDJSON))
        raw = _split_batch(gw, body, ndjson=kind == NDJSON)
        _limit(gw, principal, len(raw))
        items = [_Item(i) for i in range(len(raw))]
        for item, obj in zip(items, raw, strict=True):
            if isinstance(obj, DecodeError):
                item.result = _rejected(item.index, obj.issues)
            else:
                _check(gw, principal, item, obj, fields)
        refused = [item for item in items if item.out_of_scope]
        if refused:
            results = [_rejected(i.index, i.out_of_scope, i.event.event_id if i.event else None) for i in refused]
            first = refused[0]
            raise Refused(
                403,
                "out_of_scope",
                f"{len(refused)} event(s) outside the scope of {principal.name}, nothing published; the first "
                f"(index {first.index}): {first.out_of_scope[0]}",
                results=results,
            )
        await _dedupe_and_publish(gw, principal, items)
        results = [item.result for item in items if item.result is not None]
        counts = {
            s: sum(r.status == s for r in results) for s in ("accepted", "duplicate", "rejected", "not_acknowledged")
        }
        request.state.counts = {k: v for k, v in counts.items() if v}
        if counts["not_acknowledged"]:
            raise _unavailable(gw, results)
        payload = BatchResult(results=results, **counts).model_dump(mode="json", exclude_none=True)
        return JSONResponse(payload, status_code=200)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            event_schema = AGENCY_EVENT_ADAPTER.json_schema(ref_template="#/components/schemas/{model}")
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(event_schema.pop("$defs", {}))
            components["AgencyEvent"] = event_schema
            document["components"]["securitySchemes"] = {
                "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "Bearer": {"type": "http", "scheme": "bearer"},
            }
            document["security"] = [{"ApiKey": []}, {"Bearer": []}]
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(AccessLog, trust_forwarded_for=gw.settings.trust_forwarded_for)
    return app


class AccessLog:
    """One structured line per request: method, path, status, principal, client, per-status event counts, time.
    Never the body, the query string or any header (a key, a pseudonymised raw identifier would be in them).
    Plain ASGI (not BaseHTTPMiddleware, which costs a task group per request)."""

    def __init__(self, app: Any, *, trust_forwarded_for: bool) -> None:
        self._app = app
        self._forwarded = trust_forwarded_for

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        state = scope.setdefault("state", {})
        state["principal"] = None
        state["counts"] = None
        status = 500

        async def sending(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, sending)
        finally:
            client = scope.get("client")
            address = client[0] if client else None
            if self._forwarded:
                for name, value in scope.get("headers", ()):
                    if name == b"x-forwarded-for":
                        address = value.decode("latin-1").split(",")[0].strip()[:64]
            if log.isEnabledFor(logging.INFO):
                line = {
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "status": status,
                    "principal": state.get("principal"),
                    "client": address,
                    "events": state.get("counts"),
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                }
                log.info(json.dumps(line, separators=(",", ":")))


def _issues_in(result: EventResult) -> list[Issue]:
    return [Issue(i.field, i.reason, i.code) for i in result.issues]


def _unavailable(gw: Gateway, results: list[EventResult]) -> Refused:
    acked = sum(r.status == "accepted" for r in results)
    missing = sum(r.status == "not_acknowledged" for r in results)
    return Refused(
        503,
        "kafka_unavailable",
        f"Kafka did not acknowledge {missing} event(s); nothing else is claimed. Send them again after "
        f"{gw.settings.retry_after_s} s" + (f" ({acked} accepted ones will be answered duplicate)" if acked else ""),
        results=results,
        headers={"Retry-After": str(gw.settings.retry_after_s)},
    )


def _authenticate(gw: Gateway, request: Request) -> Principal:
    principals = gw.principals()
    secret = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if secret is None and authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            secret = token.strip()
    challenge = {"WWW-Authenticate": 'Bearer realm="safeguard-gateway"'}
    if secret is not None:
        check = principals.check_key(secret)
        if check.principal is None:
            raise Refused(401, "unauthenticated", check.refusal or "the API key is not valid", headers=challenge)
        request.state.principal = check.principal.name
        return check.principal
    tls = request.scope.get("extensions", {}).get("tls", {})
    subject = tls.get("client_cert_subject") if isinstance(tls, dict) else None
    if isinstance(subject, str) and subject:
        principal = principals.by_subject(subject)
        if principal is None:
            raise Refused(401, "unauthenticated", "the client certificate belongs to no principal", headers=challenge)
        request.state.principal = principal.name
        return principal
    raise Refused(
        401,
        "unauthenticated",
        "no credentials: send the API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`",
        headers=challenge,
    )


def _pseudonymise_fields(gw: Gateway, requested: str | None) -> frozenset[str]:
    if requested is None:
        return frozenset()
    fields = frozenset(f.strip() for f in requested.split(",") if f.strip())
    if not gw.settings.pseudonymise or gw.pseudonymiser is None:
        raise Refused(400, "pseudonymise_disabled", "this gateway does not pseudonymise; send pseudonyms")
    unknown = sorted(fields - PSEUDONYMISABLE)
    if unknown or not fields:
        raise Refused(
            400,
            "pseudonymise_fields",
            f"only {', '.join(sorted(PSEUDONYMISABLE))} can be pseudonymised"
            + (f"; not {', '.join(u[:40] for u in unknown[:5])}" if unknown else ""),
        )
    return fields


def _limit(gw: Gateway, principal: Principal, events: int) -> None:
    assert gw.limiter is not None
    wait = gw.limiter.take(principal.name, events)
    if wait:
        raise Refused(
            429,
            "rate_limited",
            f"{principal.name} is over its rate of {gw.settings.rate_events_per_s:g} events/s; retry after {wait:g} s",
            headers={"Retry-After": str(int(wait))},
        )


async def _read_body(gw: Gateway, request: Request) -> bytes:
    limit = gw.settings.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(
            413, "body_too_large", f"the body has {int(declared):,} bytes; the gateway takes at most {limit:,}"
        )

    async def read() -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Refused(413, "body_too_large", f"the body is over {limit:,} bytes, the gateway's limit")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout=gw.settings.body_timeout_s)
    except TimeoutError:
        raise Refused(408, "body_timeout", f"the body did not arrive within {gw.settings.body_timeout_s:g} s") from None


def _content_type(request: Request, allowed: tuple[str, ...]) -> str:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind not in allowed:
        raise Refused(415, "unsupported_media_type", f"send {' or '.join(allowed)}, not {kind[:60]!r}")
    return kind


def _split_batch(gw: Gateway, body: bytes, *, ndjson: bool) -> list[dict[str, Any] | DecodeError]:
    most = gw.settings.max_batch_events
    items: list[dict[str, Any] | DecodeError] = []
    if ndjson:
        lines = [line for line in body.split(b"\n") if line.strip()]
        if len(lines) > most:
            raise Refused(413, "batch_too_large", f"the batch has {len(lines)} events; at most {most} per request")
        for line in lines:
            try:
                items.append(parse_json_object(line.rstrip(b"\r")))
            except DecodeError as exc:
                items.append(exc)
    else:
        try:
            parsed = from_json(body) if body.strip() else None
        except ValueError as exc:
            detail = "nested too deeply" if "recursion" in str(exc) else str(exc)[:200]
            raise Refused(422, "not_json", f"the body is not valid JSON ({detail})") from None
        if not isinstance(parsed, list):
            raise Refused(422, "not_array", f"the body must be a JSON array of events (or {NDJSON}, one per line)")
        if len(parsed) > most:
            raise Refused(413, "batch_too_large", f"the batch has {len(parsed)} events; at most {most} per request")
        for element in parsed:
            if isinstance(element, dict):
                items.append(element)
            else:
                items.append(DecodeError([Issue("", "each item must be a JSON object, one event", "not_object")]))
    if not items:
        raise Refused(422, "empty_batch", "the batch holds no events")
    return items


def _check(gw: Gateway, principal: Principal, item: _Item, obj: dict[str, Any], fields: frozenset[str]) -> None:
    """Validate one event (after pseudonymising what was asked) and check it against the principal's scope."""
    try:
        if fields:
            assert gw.pseudonymiser is not None
            obj = _pseudonymised(gw.pseudonymiser, obj, fields)
        event = validate_event(obj)
        issues = event_time_issues(event, reference=gw.clock(), window=gw.window)
        if issues:
            item.result = _rejected(item.index, issues, event.event_id)
            return
    except ContractError as exc:
        item.result = _rejected(item.index, exc.issues)
        return
    except (ValueError, TypeError, RecursionError, OverflowError) as exc:  # e.g. an empty id to pseudonymise
        item.result = _rejected(item.index, [Issue("", str(exc) or type(exc).__name__, "invalid")])
        return
    item.event = event
    item.out_of_scope = scope_issues(principal, event)
    item.value = encode(event)
    item.digest = hashlib.sha256(item.value).digest()


def _pseudonymised(pseudonymiser: Pseudonymiser, obj: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    def hashed(value: Any) -> Any:
        if isinstance(value, str) and not is_pseudonym(value):
            return pseudonymiser.pseudonym(value)
        return value

    out = dict(obj)
    for name in fields & out.keys():
        out[name] = hashed(out[name])
    if "child_id" in fields and isinstance(out.get("children"), list):
        out["children"] = [
            {**c, "child_id": hashed(c["child_id"])} if isinstance(c, dict) and "child_id" in c else c
            for c in out["children"][: LIMITS.max_list_items + 1]
        ]
    return out


_REUSED = "event_id_reused"


async def _dedupe_and_publish(gw: Gateway, principal: Principal, items: list[_Item]) -> None:
    """Answer duplicates from the index (and from this request), publish the rest, record what Kafka acknowledged.

    `gw._in_flight` holds every event id handed to Kafka whose fate is not known yet, also after its request was
    answered 503: a retry waits for that fate instead of publishing the event a second time.
    """
    valid = [item for item in items if item.event is not None and item.result is None]
    waits = {gw._in_flight[i.event.event_id] for i in valid if i.event and i.event.event_id in gw._in_flight}
    if waits:
        await asyncio.wait([asyncio.shield(w) for w in waits], timeout=gw.settings.ack_timeout_s)
    known = gw.index.lookup(i.event.event_id for i in valid if i.event)
    seen: dict[str, bytes] = {}
    to_send: list[_Item] = []
    for item in valid:
        assert item.event is not None
        event_id = item.event.event_id
        before = known.get(event_id, seen.get(event_id))
        if before is None and event_id in gw._in_flight:
            item.result = EventResult(
                index=item.index,
                status="not_acknowledged",
                event_id=event_id,
                reason="an earlier request with this event is still waiting for Kafka's acknowledgement",
            )
        elif before is None:
            seen[event_id] = item.digest
            to_send.append(item)
        elif before == item.digest:
            item.result = EventResult(
                index=item.index, status="duplicate", event_id=event_id, reason="this event_id was accepted before"
            )
        else:
            issue = Issue("event_id", "was already accepted for a different event; a new event needs a new id", _REUSED)
            item.result = _rejected(item.index, [issue], event_id)
    if not to_send:
        return
    loop = asyncio.get_running_loop()
    fates: list[asyncio.Future[None]] = [loop.create_future() for _ in to_send]
    for item, fate in zip(to_send, fates, strict=True):
        assert item.event is not None
        gw._in_flight[item.event.event_id] = fate

    def settled(i: int) -> None:
        event = to_send[i].event
        assert event is not None
        if gw._in_flight.get(event.event_id) is fates[i]:
            del gw._in_flight[event.event_id]
        if not fates[i].done():
            fates[i].set_result(None)

    def late(i: int, ack: Ack | None) -> None:
        """Kafka answered after the request did (503): remember a late acknowledgement, so the retry is a duplicate."""
        event = to_send[i].event
        if ack is not None and event is not None:
            gw.index.record([(event.event_id, to_send[i].digest, principal.name)])
        settled(i)

    messages = [
        Outgoing(
            topic_for(item.event.event_type).name, message_key(item.event).encode("utf-8"), item.value, principal.name
        )
        for item in to_send
        if item.event is not None
    ]
    try:
        outcomes = await gw.publisher.publish(messages, timeout_s=gw.settings.ack_timeout_s, on_late=late)
    except BaseException:
        for i in range(len(to_send)):
            settled(i)
        raise
    acked: list[tuple[str, bytes, str]] = []
    for item, outcome in zip(to_send, outcomes, strict=True):
        assert item.event is not None
        if isinstance(outcome, Ack):
            acked.append((item.event.event_id, item.digest, principal.name))
            item.result = EventResult(
                index=item.index,
                status="accepted",
                event_id=item.event.event_id,
                topic=outcome.topic,
                partition=outcome.partition,
                offset=outcome.offset,
            )
        else:
            assert isinstance(outcome, NotAcknowledged)
            item.result = EventResult(
                index=item.index, status="not_acknowledged", event_id=item.event.event_id, reason=outcome.reason
            )
    gw.index.record(acked)  # before any waiter runs: no await between the acknowledgements and here
    for i, outcome in enumerate(outcomes):
        if isinstance(outcome, Ack) or not outcome.pending:
            settled(i)
