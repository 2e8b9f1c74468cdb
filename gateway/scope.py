"""What a principal may publish: a pure check of one valid event against the principal's scope."""

from __future__ import annotations

from gateway.principals import Principal
from schemas.errors import Issue
from schemas.events import Envelope

OUT_OF_SCOPE = "out_of_scope"


def scope_issues(principal: Principal, event: Envelope) -> list[Issue]:
    """Every part of the scope the event falls outside (empty: the principal may publish it)."""
    issues: list[Issue] = []
    if event.event_type not in principal.event_types:
        issues.append(
            Issue(
                "event_type",
                f"`{event.event_type}` is outside the scope of {principal.name}, which may publish "
                f"{', '.join(principal.event_types)}",
                OUT_OF_SCOPE,
            )
        )
    if event.agency_type != principal.agency_type:
        issues.append(
            Issue(
                "agency_type",
                f"{event.agency_type!r} is not the agency type of {principal.name} ({principal.agency_type!r})",
                OUT_OF_SCOPE,
            )
        )
    if event.agency_code not in principal.agency_codes:
        issues.append(
            Issue(
                "agency_code",
                f"{event.agency_code!r} is another agency's code; {principal.name} publishes as "
                f"{', '.join(principal.agency_codes)}",
                OUT_OF_SCOPE,
            )
        )
    if event.la_code not in principal.la_codes:
        issues.append(
            Issue(
                "la_code",
                f"{event.la_code!r} is outside the local authorities of {principal.name} "
                f"({', '.join(principal.la_codes)})",
                OUT_OF_SCOPE,
            )
        )
    return issues
