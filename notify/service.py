"""The notifier service: Kafka in (alerts), Kafka out (lifecycle), channels, and the acknowledgement page.

One asyncio loop owns the store (SQLite, or PostgreSQL shared by several instances: docs/notifier.md), the work
loop (`Notifier.tick`) and the web app; the kafka-python consumer's `poll`/`commit` and the producer's `flush` run
in worker threads. The order that keeps every alert:
poll → record the batch in the store (one transaction) → commit the offsets. Lifecycle events are written to the
store's outbox in the same transactions as the changes they describe and published from there; a row is marked
published only after Kafka acknowledged it, and its deterministic `event_id` makes a re-publish harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from notify.channels import Channel, ConsoleChannel, SmtpChannel, WebhookChannel
from notify.core import Timing
from notify.engine import LinkConfig, Notifier, new_instance_id
from notify.evidence import EvidenceSource
from notify.rota import Rota, RotaError, load_rota
from notify.store import NotifyStore
from notify.web import WebConfig, WebUser, make_app
from safeguard.clock import Clock, system_clock
from safeguard.settings import NotifySettings
from schemas.alerts import AlertRaised
from schemas.codec import decode_alert
from schemas.errors import ConfigError, ContractError
from schemas.topics import ALERT_LIFECYCLE, ALERTS

log = logging.getLogger(__name__)

DB_NAME = "notify.sqlite3"


@dataclass(frozen=True)
class Topics:
    """The topics the notifier reads and writes (tests use their own on the same broker)."""

    alerts: str = ALERTS.name
    lifecycle: str = ALERT_LIFECYCLE.name


def timing_of(settings: NotifySettings) -> Timing:
    return Timing(
        group_wait_s=settings.group_wait_s,
        group_window_s=settings.group_window_s,
        repeat_interval_s=settings.repeat_interval_s,
        escalate_after_s=settings.escalate_after_s,
        retry_initial_s=settings.retry_initial_s,
        retry_max_s=max(settings.retry_initial_s, settings.retry_max_s),
        renotify_after_s=settings.renotify_after_s,
    )


def link_secret(settings: NotifySettings) -> bytes:
    """The link secret from the settings, or one created once in `<data_dir>/link_secret` (mode 0600)."""
    if settings.link_secret is not None:
        return settings.link_secret.get_secret_value().encode("utf-8")
    path = settings.data_dir / "link_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48))
        log.info("created a link secret in %s (set SAFEGUARD_NOTIFY__LINK_SECRET to share one)", path)
    return path.read_text(encoding="utf-8").strip().encode("utf-8")


def make_channels(
    settings: NotifySettings, enabled: Sequence[str] | None = None, console: TextIO | None = None
) -> dict[str, Channel]:
    """The enabled channels by the names contacts use: email, webhook-slack, webhook-teams, console."""
    wanted = set(enabled if enabled is not None else settings.channels)
    unknown = wanted - {"console", "email", "webhook"}
    if unknown:
        raise ConfigError(f"unknown channel(s): {', '.join(sorted(unknown))}; use console, email, webhook")
    channels: dict[str, Channel] = {}
    if "email" in wanted:
        channels["email"] = SmtpChannel(
            settings.smtp_host,
            settings.smtp_port,
            settings.smtp_from,
            username=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout_s=settings.smtp_timeout_s,
            pool_size=settings.send_concurrency,
        )
    if "webhook" in wanted:
        channels["webhook-slack"] = WebhookChannel("slack", settings.webhook_timeout_s)
        channels["webhook-teams"] = WebhookChannel("teams", settings.webhook_timeout_s)
    if "console" in wanted:
        channels["console"] = ConsoleChannel(console)
    if not channels:
        raise ConfigError("no channel is enabled (SAFEGUARD_NOTIFY__CHANNELS)")
    return channels


def rota_problems(rota: Rota, channels: Mapping[str, Channel], settings: NotifySettings) -> list[str]:
    """Why the service cannot use `rota` with these channels and users (empty: it can)."""
    problems: list[str] = []
    unreachable = [cid for cid, c in rota.contacts.items() if not any(ch in channels for ch, _ in c.channels())]
    if unreachable:
        problems.append(
            f"contacts of {rota.source} with no enabled channel: {', '.join(unreachable)} (enabled: "
            f"{', '.join(sorted(channels))}); enable theirs with SAFEGUARD_NOTIFY__CHANNELS or --channels"
        )
    teams = {t.name for t in rota.teams}
    for name, user in settings.users.items():
        if user.team not in teams:
            problems.append(
                f"SAFEGUARD_NOTIFY__USERS: user {name!r} is in team {user.team!r}, which is not a team of "
                f"{rota.source} ({', '.join(sorted(teams))})"
            )
    return problems


def web_users(settings: NotifySettings, rota: Rota) -> dict[str, WebUser]:
    """The page's users; a user whose team is not in the rota is a configuration error."""
    teams = {t.name for t in rota.teams}
    users: dict[str, WebUser] = {}
    for name, user in settings.users.items():
        if user.team not in teams:
            raise ConfigError(
                f"SAFEGUARD_NOTIFY__USERS: user {name!r} is in team {user.team!r}, which is not a team of "
                f"{rota.source} ({', '.join(sorted(teams))})"
            )
        users[name] = WebUser(user.password_hash.get_secret_value(), user.team)
    return users


class NotifierService:
    """Runs until `stop()`: consume alerts, deliver, escalate, publish lifecycle events, serve the page."""

    def __init__(
        self,
        settings: NotifySettings,
        client_options: Mapping[str, Any],
        rota: Rota,
        *,
        clock: Clock = system_clock,
        channels: Mapping[str, Channel] | None = None,
        topics: Topics = Topics(),
        tick_s: float = 0.05,
        rota_path: Path | None = None,
        reload_check_s: float = 2.0,
        evidence: EvidenceSource | None = None,
    ) -> None:
        self.settings = settings
        self.rota = rota
        self.clock = clock
        self.topics = topics
        self._client_options = dict(client_options)
        self._channels = dict(channels) if channels is not None else make_channels(settings)
        unreachable = [
            cid for cid, c in rota.contacts.items() if not any(ch in self._channels for ch, _ in c.channels())
        ]
        if unreachable:
            raise ConfigError(
                f"contacts of {rota.source} with no enabled channel: {', '.join(unreachable)} (enabled: "
                f"{', '.join(sorted(self._channels))}); enable theirs with SAFEGUARD_NOTIFY__CHANNELS or --channels"
            )
        self._users = web_users(settings, rota)
        self._tick_s = tick_s
        self._rota_path = rota_path
        self._reload_check_s = reload_check_s
        self._rota_stamp = _stamp(rota_path) if rota_path is not None else None
        self._reload_now: asyncio.Event | None = None
        self._evidence = evidence
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.ready = threading.Event()
        self.port: int | None = None
        self.notifier: Notifier | None = None
        self.store: NotifyStore | None = None
        self.error: BaseException | None = None

    # -- control ----------------------------------------------------------------------------------------------

    def run(self) -> None:
        """Block until stopped. Any error that stops the service is raised here (and kept in `error`)."""
        try:
            asyncio.run(self._main())
        except BaseException as exc:
            self.error = exc
            self.ready.set()
            raise

    def stop(self) -> None:
        """Ask the service to finish (thread-safe; safe from a signal handler)."""
        loop, event = self._loop, self._stop
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(event.set)

    def request_reload(self) -> None:
        """Read the rota file again now (thread-safe; safe from a signal handler such as SIGHUP's)."""
        loop, event = self._loop, self._reload_now
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(event.set)

    def call(self, fn: Any, *args: Any) -> Any:
        """Run `fn(*args)` on the service's loop and return its result (tests use it to read the store)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(_call(fn, *args), self._loop)
        return future.result(timeout=30)

    # -- the loop ---------------------------------------------------------------------------------------------

    async def _main(self) -> None:
        from aiohttp import web
        from kafka import KafkaConsumer, KafkaProducer

        from producers.publisher import PRODUCER_DEFAULTS

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._reload_now = asyncio.Event()
        settings = self.settings
        check_shared(settings)
        store = await asyncio.to_thread(open_store, settings)
        self.store = store
        secret = link_secret(settings)
        notifier = Notifier(
            store=store,
            rota=self.rota,
            channels=self._channels,
            links=LinkConfig(settings.base_url, secret, settings.link_ttl_s),
            clock=self.clock,
            timing=timing_of(settings),
            concurrency=settings.send_concurrency,
            instance=new_instance_id(settings.instance_name),
            lease_s=settings.claim_lease_s,
            heartbeat_s=max(0.2, settings.claim_lease_s / 5),
        )
        self.notifier = notifier
        web_config = WebConfig(
            settings.base_url, secret, settings.session_ttl_s, self._users, self.rota.timezone,
            rota=lambda: notifier.rota, channels=frozenset(self._channels), evidence=self._evidence,
        )  # fmt: skip
        runner = web.AppRunner(make_app(store, web_config, self.clock), access_log=None)
        await runner.setup()
        consumer: Any = None
        producer: Any = None
        try:
            site = web.TCPSite(runner, settings.bind_host, settings.bind_port)
            await site.start()
            self.port = _bound_port(runner, settings.bind_port)
            consumer = KafkaConsumer(
                **self._client_options,
                group_id=settings.consumer_group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=1000,
                session_timeout_ms=settings.session_timeout_ms,
                heartbeat_interval_ms=max(1000, settings.session_timeout_ms // 3),
                # a group formed before the alerts topic's partitions were known assigns nothing until the next
                # metadata refresh: 30 s, not kafka-python's 5 min, bounds how long alerts could wait for it
                metadata_max_age_ms=30_000,
            )
            # kafka-python joins the group with whatever metadata it holds and, for a topic list (not a pattern), does
            # not refresh it first: a join made before the topic's partitions are known assigns nothing, and the
            # update arriving during the join is lost (KAFKA-3949), so the notifier would wait with no partitions.
            # Seen under CI load: no alert taken for minutes after a start. Know the partitions before the first join.
            if not await asyncio.to_thread(consumer.partitions_for_topic, self.topics.alerts):
                log.warning("topic %s has no partitions yet (not created?); alerts wait for it", self.topics.alerts)
            consumer.subscribe([self.topics.alerts])
            producer = KafkaProducer(**{**PRODUCER_DEFAULTS, "linger_ms": 5, **self._client_options})
            log.info(
                "notifier: alerts from %s, lifecycle to %s, page on http://%s:%s (base url %s), channels %s",
                self.topics.alerts, self.topics.lifecycle, settings.bind_host, self.port, settings.base_url,
                ", ".join(sorted(self._channels)),
            )  # fmt: skip
            wake = asyncio.Event()
            self.ready.set()
            consume = asyncio.create_task(self._consume(consumer, notifier, store, wake))
            work = asyncio.create_task(self._work(notifier, wake))
            publish = asyncio.create_task(self._publisher(store, producer))
            watch = asyncio.create_task(self._watch_rota(notifier, store))
            stopping = asyncio.create_task(self._stop.wait())
            tasks = {consume, work, publish, watch}
            done, _ = await asyncio.wait({*tasks, stopping}, return_when=asyncio.FIRST_COMPLETED)
            self._stop.set()
            for task in tasks:
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            await asyncio.gather(*tasks)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(notifier.drain(), timeout=15)
            notifier.close()
            if notifier.coordinator:
                await self._publish(store, producer)
            try:
                notifier.release()  # another instance takes the claims over at once
            except Exception as exc:  # the store is gone: the claims' leases run out instead
                log.warning("could not give up this instance's claims (they expire by themselves): %s", exc)
        finally:
            if consumer is not None:
                await asyncio.to_thread(consumer.close, autocommit=False)
            if producer is not None:
                await asyncio.to_thread(producer.close, 10)
            await runner.cleanup()
            for channel in self._channels.values():
                channel.close()
            store.close()

    async def _consume(self, consumer: Any, notifier: Notifier, store: NotifyStore, wake: asyncio.Event) -> None:
        from kafka.errors import KafkaError
        from kafka.structs import OffsetAndMetadata

        assert self._stop is not None
        while not self._stop.is_set():
            # a poll returns as soon as records come; a longer wait gives the group join room on a loaded machine
            polled = await asyncio.to_thread(consumer.poll, timeout_ms=1000, max_records=1000)
            alerts: list[AlertRaised] = []
            offsets: dict[Any, Any] = {}
            for tp, records in polled.items():
                for record in records:
                    try:
                        alerts.append(decode_alert(record.value or b""))
                    except ContractError as exc:
                        where = f"{tp.topic}/{tp.partition}@{record.offset}"
                        log.error("unreadable alert at %s (%s): skipped", where, exc.reason_code)
                        store.audit(self.clock(), "system", "unreadable_alert", (), f"{where}: {exc.reason_code}")
                    offsets[tp] = OffsetAndMetadata(record.offset + 1, "", -1)
            if alerts:
                notifier.take(alerts)  # durable before the offsets move
                wake.set()
            if offsets:
                try:
                    await asyncio.to_thread(consumer.commit, offsets)
                except KafkaError as exc:  # the alerts are stored; a re-read is dropped as a duplicate
                    log.warning("committing offsets failed (the alerts are stored; a re-read is harmless): %s", exc)

    async def _work(self, notifier: Notifier, wake: asyncio.Event) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            await notifier.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=self._tick_s)
            wake.clear()

    async def _watch_rota(self, notifier: Notifier, store: NotifyStore) -> None:
        """Reload the rota when its file changes (or on `request_reload`). A file that cannot be used leaves the
        running rota in place; every problem is logged and audited."""
        assert self._stop is not None and self._reload_now is not None
        path = self._rota_path
        if path is None:  # nothing to watch (tests): wait like the other tasks, a finished task stops the service
            await self._stop.wait()
            return
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload_now.wait(), timeout=self._reload_check_s)
            forced = self._reload_now.is_set()
            self._reload_now.clear()
            stamp = await asyncio.to_thread(_stamp, path)
            if not forced and stamp == self._rota_stamp:
                continue
            self._rota_stamp = stamp
            self.reload_rota(notifier, store, path)

    def reload_rota(self, notifier: Notifier, store: NotifyStore, path: Path) -> bool:
        """Read `path` and use it if it is valid and fits the channels and users; else keep the rota running."""
        try:
            new = load_rota(path)
            problems = rota_problems(new, self._channels, self.settings)
        except RotaError as exc:
            problems = exc.problems
        if problems:
            log.error("rota %s not reloaded; the running rota stays in use:\n  %s", path, "\n  ".join(problems))
            store.audit(self.clock(), "system", "rota_reload_refused", (), "; ".join(problems))
            return False
        self.rota = new
        notifier.reload_rota(new)
        detail = f"{path}: {len(new.teams)} teams, {len(new.contacts)} contacts, {len(new.inhibitions)} inhibitions"
        log.info("rota reloaded from %s", detail)
        store.audit(self.clock(), "system", "rota_reloaded", (), detail)
        return True

    async def _publisher(self, store: NotifyStore, producer: Any) -> None:
        """Lifecycle events from the outbox to Kafka, beside the work loop (a slow broker never holds sends)."""
        assert self._stop is not None
        while not self._stop.is_set():
            if self.notifier is None or self.notifier.coordinator:  # one instance publishes (the coordinator)
                await self._publish(store, producer)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self._tick_s)

    async def _publish(self, store: NotifyStore, producer: Any) -> None:
        from kafka.errors import KafkaError

        pending = store.pending_lifecycle(2000)
        if not pending:
            return
        futures = []
        try:
            for _seq, alert_id, payload in pending:
                futures.append(producer.send(self.topics.lifecycle, key=alert_id.encode("utf-8"), value=payload))
            await asyncio.to_thread(producer.flush, 30)
        except KafkaError as exc:
            log.warning("publishing lifecycle events failed, will retry: %s", exc)
        done = [seq for (seq, _, _), f in zip(pending, futures, strict=False) if f.is_done and f.succeeded()]
        store.mark_published(done)


async def _call(fn: Any, *args: Any) -> Any:
    return fn(*args)


def _bound_port(runner: Any, configured: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return configured


def _stamp(path: Path) -> tuple[int, int] | None:
    """What tells a changed file: modification time and size (None while it is missing)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def data_path(settings: NotifySettings) -> Path:
    return settings.data_dir / DB_NAME


def check_shared(settings: NotifySettings) -> None:
    """A shared store needs a shared link secret: links signed by one instance are opened on another."""
    if settings.store_url is not None and settings.link_secret is None:
        raise ConfigError(
            "SAFEGUARD_NOTIFY__STORE_URL is set (a store shared by several instances): set "
            "SAFEGUARD_NOTIFY__LINK_SECRET too, the same on every instance, so that links work on each"
        )


def open_store(settings: NotifySettings) -> NotifyStore:
    """The store the settings name: the shared PostgreSQL store (`store_url`), else SQLite in `data_dir`."""
    if settings.store_url is not None:
        password = settings.store_password.get_secret_value() if settings.store_password else None
        return NotifyStore(settings.store_url, password=password)
    return NotifyStore(data_path(settings))


def store_exists(settings: NotifySettings) -> bool:
    return settings.store_url is not None or data_path(settings).exists()
