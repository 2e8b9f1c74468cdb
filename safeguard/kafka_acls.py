"""Least privilege on Kafka: one principal per service, and the ACLs that give it only what it needs.

The catalogue (`grants`) is pure data derived from the settings (principal names, the worker's app id, the sink's
and the notifier's consumer groups), so the local broker, `safeguard kafka acls`, docker-compose and a partnership's
own cluster (`kafka-acls.sh` lines from `acl_commands`) all apply the same rules. Everything not granted is denied:
the brokers run with `allow.everyone.if.no.acl.found=false`, and only the admin principal is a super user.

    gateway           WRITE the event topics (an agency can neither read events nor write alerts)
    agency            the same, and WRITE data-quality findings (`safeguard import` publishes them)
    worker            READ the event topics; WRITE alerts, dead letters and data-quality findings; everything on
                      its `<app_id>-*` topics
                      (changelogs, repartitions, re-routed records), which it creates; its consumer group `<app_id>`
    sink              READ every contract topic; its consumer group
    notifier          READ alerts; WRITE alert lifecycle; its consumer group

Producers are idempotent: since Kafka 2.8 (KIP-679) WRITE on a topic implies the IdempotentWrite a producer id
needs, so nobody is given a cluster-wide right.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import SecretStr

from safeguard.settings import KafkaAccessSettings, Settings
from schemas.errors import LocalKafkaError
from schemas.topics import ALERT_LIFECYCLE, ALERTS, DEAD_LETTER, EVENT_TOPICS, QUALITY_FINDINGS, TOPICS

log = logging.getLogger(__name__)

Operation = Literal["READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"]
Resource = Literal["topic", "group"]
Pattern = Literal["literal", "prefixed"]
Progress = Callable[[str], None]

SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class Grant:
    """ALLOW `operations` on one resource (a topic or group, by exact name or by prefix) to one principal."""

    role: str
    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operations: tuple[Operation, ...]


@dataclass(frozen=True)
class Principal:
    """A service's Kafka identity: its role, user name and SCRAM password (None: not created by us)."""

    role: str
    user: str
    password: SecretStr | None


def principals(access: KafkaAccessSettings) -> tuple[Principal, ...]:
    """The service principals (not the admin), in a stable order."""
    return tuple(
        Principal(role, getattr(access, f"{role}_user"), getattr(access, f"{role}_password"))
        for role in ("gateway", "agency", "worker", "sink", "notifier")
    )


def grants(settings: Settings) -> tuple[Grant, ...]:
    """Every ACL of every service principal (see the module docstring)."""
    access = settings.kafka_access
    app_id = settings.streams.app_id
    out: list[Grant] = []

    def topics(role: str, user: str, names: list[str], *operations: Operation) -> None:
        out.extend(Grant(role, user, "topic", name, "literal", operations) for name in names)

    def group(role: str, user: str, name: str) -> None:
        out.append(Grant(role, user, "group", name, "literal", ("READ", "DESCRIBE")))

    events = [spec.name for spec in EVENT_TOPICS]
    topics("gateway", access.gateway_user, events, "WRITE", "DESCRIBE")
    topics("agency", access.agency_user, [*events, QUALITY_FINDINGS.name], "WRITE", "DESCRIBE")
    worker = access.worker_user
    topics("worker", worker, events, "READ", "DESCRIBE")
    topics("worker", worker, [ALERTS.name, DEAD_LETTER.name, QUALITY_FINDINGS.name], "WRITE", "DESCRIBE")
    # Its own topics: changelogs, the obligations repartition, re-routed records, Faust's leader topic.
    out.append(
        Grant(
            "worker",
            worker,
            "topic",
            f"{app_id}-",
            "prefixed",
            ("READ", "WRITE", "CREATE", "DESCRIBE", "DESCRIBE_CONFIGS"),
        )
    )
    group("worker", worker, app_id)
    sink = access.sink_user
    topics("sink", sink, [spec.name for spec in TOPICS], "READ", "DESCRIBE")
    group("sink", sink, settings.clickhouse.consumer_group)
    notifier = access.notifier_user
    topics("notifier", notifier, [ALERTS.name], "READ", "DESCRIBE")
    topics("notifier", notifier, [ALERT_LIFECYCLE.name], "WRITE", "DESCRIBE")
    group("notifier", notifier, settings.notify.consumer_group)
    return tuple(out)


def acl_commands(
    settings: Settings, command: str = "kafka-acls.sh --bootstrap-server $BOOTSTRAP --command-config admin.properties"
) -> list[str]:
    """The catalogue as `kafka-acls.sh --add` lines, for a cluster whose operators apply ACLs themselves."""
    lines = []
    for grant in grants(settings):
        ops = " ".join(f"--operation {op.title().replace('_', '')}" for op in grant.operations)
        pattern = " --resource-pattern-type prefixed" if grant.pattern == "prefixed" else ""
        lines.append(
            f"{command} --add --allow-principal User:{grant.principal} {ops} --{grant.resource} {grant.name}{pattern}"
        )
    return lines


def _kafka_acls(grant: Grant) -> list[Any]:
    from kafka.admin import (
        ACL,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        ResourcePattern,
        ResourceType,
    )

    pattern = ResourcePattern(
        ResourceType.TOPIC if grant.resource == "topic" else ResourceType.GROUP,
        grant.name,
        ACLResourcePatternType.PREFIXED if grant.pattern == "prefixed" else ACLResourcePatternType.LITERAL,
    )
    return [
        ACL(f"User:{grant.principal}", "*", ACLOperation[op], ACLPermissionType.ALLOW, pattern)
        for op in grant.operations
    ]


def apply(admin: Any, settings: Settings, progress: Progress | None = None) -> tuple[list[str], int]:
    """Upsert the SCRAM credential of each principal that has a password, and create every ACL of the catalogue.

    Idempotent (creating an existing ACL is a no-op; a credential upsert replaces the password, which is how a
    password is rotated). `admin` is a connected KafkaAdminClient logged in as a super user (or a principal
    with ALTER on the cluster). Returns (users whose credential was set, ACLs requested). ACLs of principals that
    are no longer in the catalogue are not removed.
    """
    from kafka.admin import ScramMechanism, UserScramCredentialUpsertion

    users = [p for p in principals(settings.kafka_access) if p.password is not None]
    admin_password = settings.kafka_access.admin_password
    upserts = [
        UserScramCredentialUpsertion(p.user, ScramMechanism.SCRAM_SHA_512, p.password.get_secret_value())
        for p in users
        if p.password is not None
    ]
    if admin_password is not None:
        upserts.append(
            UserScramCredentialUpsertion(
                settings.kafka_access.admin_user, ScramMechanism.SCRAM_SHA_512, admin_password.get_secret_value()
            )
        )
    set_users: list[str] = []
    if upserts:
        errors = admin.alter_user_scram_credentials(upserts)
        failed = {user: error for user, error in errors.items() if error}
        if failed:
            raise LocalKafkaError(
                "Kafka refused the SCRAM credentials of "
                + ", ".join(f"{user} ({error})" for user, error in sorted(failed.items()))
            )
        set_users = sorted(errors)
    acls = [acl for grant in grants(settings) for acl in _kafka_acls(grant)]
    result = admin.create_acls(acls)
    if result.get("failed"):
        raise LocalKafkaError(
            f"Kafka refused {len(result['failed'])} of {len(acls)} ACLs: "
            + ", ".join(sorted({type(e).__name__ if not isinstance(e, type) else e.__name__ for e in result["failed"]}))
        )
    message = f"Kafka access: {len(acls)} ACLs for {len(principals(settings.kafka_access))} principals"
    if set_users:
        message += f"; SCRAM credentials set for {', '.join(set_users)}"
    if progress:
        progress(message)
    else:
        log.info("%s", message)
    return set_users, len(acls)


def apply_on(client_options: dict[str, Any], settings: Settings, progress: Progress | None = None) -> None:
    """`apply` through an admin client made from `client_options` (a super user's login); Kafka's refusals and
    unreachable brokers become LocalKafkaError with the reason."""
    from safeguard.kafka_local import admin_client

    with admin_client(client_options) as admin:
        apply(admin, settings, progress)


def table(settings: Settings) -> list[tuple[str, str, str]]:
    """(principal, resource, operations) rows of the catalogue, for people (`safeguard kafka acls --print`)."""
    rows = []
    for grant in grants(settings):
        name = f"{grant.name}*" if grant.pattern == "prefixed" else grant.name
        rows.append((f"User:{grant.principal}", f"{grant.resource} {name}", ", ".join(grant.operations)))
    return rows


__all__ = [
    "SCRAM_MECHANISM",
    "Grant",
    "Principal",
    "acl_commands",
    "apply",
    "apply_on",
    "grants",
    "principals",
    "table",
]
