"""`safeguard gateway`: the HTTPS ingestion gateway for agency systems, and its principals (agencies, keys)."""

from __future__ import annotations

import json
import logging

import click

from safeguard.settings import Settings

pass_settings = click.make_pass_decorator(Settings)
log = logging.getLogger("safeguard.gateway")

_EVENT_TYPES_HELP = "event types it may publish (repeat; default: every type of the contract)"


@click.group()
def gateway() -> None:
    """Agencies post events over HTTP(S); each is authenticated, scoped, validated and published to Kafka."""


@gateway.command("run")
@click.option("--port", type=int, help="default: SAFEGUARD_GATEWAY__BIND_PORT")
@pass_settings
def gateway_run(settings: Settings, port: int | None) -> None:
    """Serve POST /v1/events and /v1/events:batch (OpenAPI at /openapi.json, docs at /docs) until Ctrl-C."""
    import uvicorn

    from gateway.app import Gateway, create_app
    from gateway.dedupe import AcceptedIndex
    from gateway.kafka import GatewayPublisher
    from gateway.principals import PrincipalsFile
    from gateway.server import uvicorn_config
    from producers.pseudonymise import Pseudonymiser
    from safeguard.clock import system_clock
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import resolve_bootstrap

    gs = settings.gateway if port is None else settings.gateway.model_copy(update={"bind_port": port})
    principals = PrincipalsFile(gs.principals_file)
    if not principals.current().by_name:
        click.secho(
            f"warning: no principals in {gs.principals_file}; every request will be refused until "
            "`safeguard gateway add-agency` adds one",
            fg="yellow",
            err=True,
        )
    pseudonymiser = None
    if gs.pseudonymise:
        secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
        pseudonymiser = Pseudonymiser.from_secret(secret)  # refuses a missing or short key here, at start
    bootstrap = resolve_bootstrap(settings)
    publisher = GatewayPublisher.connect(client_options(settings.kafka, bootstrap), max_block_s=gs.ack_timeout_s)
    index = AcceptedIndex(gs.data_dir / "accepted.sqlite", max_entries=gs.dedupe_max_entries)
    app = create_app(
        Gateway(
            settings=gs,
            principals=principals.current,
            publisher=publisher,
            index=index,
            clock=system_clock,
            window=settings.event_time,
            pseudonymiser=pseudonymiser,
        )
    )
    scheme = "https" if gs.tls_certfile else "http"
    click.echo(f"gateway on {scheme}://{gs.bind_host}:{gs.bind_port} publishing to {bootstrap}", err=True)
    try:
        uvicorn.Server(uvicorn_config(app, gs, log_level=settings.log_level)).run()
    finally:
        publisher.close()
        index.close()


@gateway.command("add-agency")
@click.argument("name")
@click.option(
    "--agency-type",
    required=True,
    type=click.Choice(["police", "health", "education", "local_authority", "other"]),
)
@click.option("--agency-code", "agency_codes", multiple=True, required=True, help="its agency code(s), e.g. WYP")
@click.option("--la-code", "la_codes", multiple=True, help="local authority codes (repeat; default: SAFEGUARD_LA_CODE)")
@click.option("--event-type", "event_types", multiple=True, help=_EVENT_TYPES_HELP)
@click.option("--cert-subject", "cert_subjects", multiple=True, help="mTLS client certificate subject, e.g. CN=x,O=y")
@pass_settings
def gateway_add_agency(
    settings: Settings,
    name: str,
    agency_type: str,
    agency_codes: tuple[str, ...],
    la_codes: tuple[str, ...],
    event_types: tuple[str, ...],
    cert_subjects: tuple[str, ...],
) -> None:
    """Give a new agency system NAME a scope and an API key, in the principals file; the key is printed once."""
    from gateway.principals import add_agency
    from safeguard.clock import system_clock

    path = settings.gateway.principals_file
    principal, made = add_agency(
        path,
        name=name,
        agency_type=agency_type,
        agency_codes=agency_codes,
        la_codes=la_codes or (settings.la_code,),
        event_types=event_types or None,
        cert_subjects=cert_subjects,
        today=system_clock().date(),
    )
    click.echo(f"added {principal.name} to {path}:")
    click.echo(
        f"  agency {principal.agency_type} {', '.join(principal.agency_codes)}, LA {', '.join(principal.la_codes)}"
    )
    click.echo(f"  event types: {', '.join(principal.event_types)}")
    _show_key(made.key.id, made.secret)


@gateway.command("add-key")
@click.argument("name")
@pass_settings
def gateway_add_key(settings: Settings, name: str) -> None:
    """Another API key for NAME (rotation: hand over the new key, then revoke the old one)."""
    from gateway.principals import add_key
    from safeguard.clock import system_clock

    made = add_key(settings.gateway.principals_file, name, today=system_clock().date())
    _show_key(made.key.id, made.secret)


@gateway.command("revoke-key")
@click.argument("name")
@click.argument("key_id")
@pass_settings
def gateway_revoke_key(settings: Settings, name: str, key_id: str) -> None:
    """Revoke API key KEY_ID of NAME; a running gateway refuses it within a second."""
    from gateway.principals import revoke_key
    from safeguard.clock import system_clock

    key = revoke_key(settings.gateway.principals_file, name, key_id, today=system_clock().date())
    click.echo(f"revoked key {key.id} of {name} (on {key.revoked})")


@gateway.command("list")
@pass_settings
def gateway_list(settings: Settings) -> None:
    """The principals and their keys (ids and dates only: the keys themselves are not stored)."""
    from gateway.principals import load_principals

    principals = load_principals(settings.gateway.principals_file)
    out = [
        {
            "name": p.name,
            "agency_type": p.agency_type,
            "agency_codes": list(p.agency_codes),
            "la_codes": list(p.la_codes),
            "event_types": list(p.event_types),
            "cert_subjects": list(p.cert_subjects),
            "keys": [
                {"id": k.id, "created": k.created.isoformat(), "revoked": k.revoked.isoformat() if k.revoked else None}
                for k in p.keys
            ],
        }
        for p in principals.by_name.values()
    ]
    click.echo(json.dumps(out, indent=2))


def _show_key(key_id: str, secret: str) -> None:
    click.echo(f"  API key {key_id} (shown once; only its hash is stored):")
    click.echo(f"    {secret}")
    click.echo("  the agency sends it as `Authorization: Bearer <key>` (or `X-API-Key: <key>`)")
