"""Pushing the datasource and the dashboards to a running Grafana with grafana-client (HTTP API).

The datasource is created or updated under the fixed uid the dashboards name; dashboards go into one folder
(created when missing) with `overwrite`, so pushing again replaces them. Which variant is pushed follows the
`grafana.suppress_small_numbers` switch unless the caller says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from dashboards.catalogue import DASHBOARDS
from dashboards.grafana import DATASOURCE_UID, Variant, build_dashboard, datasource_model
from safeguard.settings import GrafanaSettings
from schemas.errors import SafeguardError


class GrafanaError(SafeguardError):
    """Grafana refused or could not be reached; says which step failed."""


@dataclass
class PushResult:
    """What the push did."""

    datasource: str = ""  # "created" or "updated"
    folder_uid: str = ""
    dashboards: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)


def folder_uid(title: str) -> str:
    """A stable folder uid from its title (Grafana uids: up to 40 of [A-Za-z0-9-_])."""
    return ("safeguard-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-"))[:40]


def connect(settings: GrafanaSettings, url: str | None = None) -> Any:
    """A grafana-client API object for `url` (default: the settings'), authenticated with the token, else
    basic auth; never both, never a credential from the url's own userinfo when the settings have one."""
    from grafana_client.api import GrafanaApi

    credential: str | tuple[str, str] | None = None
    if settings.api_token is not None and settings.api_token.get_secret_value():  # an empty variable = unset
        credential = settings.api_token.get_secret_value()
    elif settings.username and settings.password is not None:
        credential = (settings.username, settings.password.get_secret_value())
    return GrafanaApi.from_url(url or settings.url, credential=credential, timeout=settings.timeout_s)


def _step(what: str, call: Any, *args: Any) -> Any:
    try:
        return call(*args)
    except Exception as exc:
        raise GrafanaError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def _is_not_found(exc: Exception) -> bool:
    from grafana_client.client import GrafanaClientError

    return isinstance(exc, GrafanaClientError) and getattr(exc, "status_code", None) == 404


def push(api: Any, settings: GrafanaSettings, database: str, variant: Variant) -> PushResult:
    """Create or update the datasource, make sure the folder exists, and overwrite every dashboard of `variant`."""
    result = PushResult()
    ds = settings.datasource
    model = datasource_model(
        name=ds.name,
        host=ds.host,
        port=ds.port,
        protocol=ds.protocol,
        secure=ds.secure,
        username=ds.username,
        database=ds.database or database,
        password=ds.password.get_secret_value() if ds.password is not None else None,
    )
    try:
        existing = api.datasource.get_datasource_by_uid(DATASOURCE_UID)
    except Exception as exc:
        if not _is_not_found(exc):
            raise GrafanaError(f"reading datasource {DATASOURCE_UID} failed: {type(exc).__name__}: {exc}") from exc
        existing = None
    if existing:
        _step("updating the datasource", api.datasource.update_datasource_by_uid, DATASOURCE_UID, model)
        result.datasource = "updated"
    else:
        _step("creating the datasource", api.datasource.create_datasource, model)
        result.datasource = "created"

    title = settings.folder + (" (shared)" if variant == "shared" else "")
    uid = folder_uid(title)
    try:
        api.folder.get_folder(uid)
    except Exception as exc:
        if not _is_not_found(exc):
            raise GrafanaError(f"reading folder {uid} failed: {type(exc).__name__}: {exc}") from exc
        _step(f"creating folder {title!r}", api.folder.create_folder, title, uid)
    result.folder_uid = uid

    for spec in DASHBOARDS:
        board = build_dashboard(spec, variant)
        answer = _step(
            f"saving dashboard {board['uid']}",
            api.dashboard.update_dashboard,
            {"dashboard": board, "folderUid": uid, "overwrite": True, "message": "safeguard dashboards push"},
        )
        result.dashboards.append(str(board["uid"]))
        if isinstance(answer, dict) and answer.get("url"):
            result.urls.append(str(answer["url"]))
    return result
