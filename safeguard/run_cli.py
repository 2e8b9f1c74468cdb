"""`safeguard run`: the main job on the local default — broker, worker, a simulated year, alerts as they are raised.

By default it shows a live view (`safeguard/run_view.py` holds its state, `safeguard/run_display.py` draws it);
`--alerts all` prints every alert instead, as earlier releases did.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console
from rich.live import Live

from safeguard.run_display import PlainProgress, alert_line, live_view, summary_table
from safeguard.run_view import URGENT, RunView, SharedView
from safeguard.services import AlertFeed, ServiceProcess, group_progress, records_on, repeating
from safeguard.settings import Settings
from safeguard.simulate_cli import publish_year
from schemas.alerts import AlertRaised
from schemas.errors import SafeguardError
from schemas.topics import EVENT_TOPICS, TOPICS

LOG_DIR = Path(".safeguard/logs")
PLAIN_EVERY_S = 5.0
"""How often a run whose output is not a terminal (CI, a pipe) prints its progress line."""
POLL_EVERY_S = 1.0
"""How often the view asks Kafka how far the worker's consumer group has got."""


class ServiceFailed(SafeguardError):
    """A service `safeguard run` started has exited on its own."""


@click.command()
@click.option("--scenario", default="leeds-2019", show_default=True, help="simulated year to replay")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--days", type=click.IntRange(min=1), help="only the first N days of the year")
@click.option("--speed", type=click.FloatRange(min=0, min_open=True), help="event-time seconds per wall second")
@click.option(
    "--alerts",
    "show",
    type=click.Choice(["live", "all", "high", "none"]),
    default="live",
    show_default=True,
    help="live: a view updated in place (progress, alerts by rule and severity, the latest high and critical "
    "alerts), plain progress lines when standard output is not a terminal; all: a line per alert as raised; "
    "high: a line per high or critical alert; none: only the summary",
)
@click.option("--republish", is_flag=True, help="publish the simulated year even if the topics already hold events")
@click.option("--follow", is_flag=True, help="keep running after the replay (live alerts) until Ctrl-C")
@click.option("--keep-broker", is_flag=True, help="leave a local broker this command started running afterwards")
@click.option(
    "--notify",
    "notify_channels",
    type=click.Choice(["console", "email"]),
    help="also run the notifier (rota, acknowledgement page): messages on its console (log) or by email to "
    "SAFEGUARD_NOTIFY__SMTP_HOST:PORT, e.g. a local mail catcher",
)
@click.pass_context
def run(
    ctx: click.Context,
    scenario: str,
    seed: int,
    days: int | None,
    speed: float | None,
    show: str,
    republish: bool,
    follow: bool,
    keep_broker: bool,
    notify_channels: str | None,
) -> None:
    """Run the pipeline on the local default and show the alerts on-duty managers would receive.

    With no Kafka configured it starts the local broker, creates the contract topics, starts the stream
    worker and the ClickHouse sink (logs in .safeguard/logs/), replays a calibrated simulated year while a live
    view shows progress and alerts (or, with --alerts all, prints each alert as it is raised), prints a summary
    per rule, and renders the analysts' report from the store (.safeguard/report.html). Ctrl-C stops everything
    this command started.
    """
    from safeguard.kafka_clients import client_options
    from safeguard.kafka_local import LocalBroker, create_topics, resolve_bootstrap

    settings = ctx.find_object(Settings)
    assert settings is not None
    signal.signal(signal.SIGTERM, _interrupt)  # `kill <pid>` stops the services and the broker as Ctrl-C does
    console = Console()
    viewing = show == "live"
    # While the live view is drawn every message goes through its console: rich writes a second Console straight
    # to the terminal, past the view's redirection, which tears the view and loses the message.
    err = console if viewing and console.is_terminal else Console(stderr=True)
    started: LocalBroker | None = None
    services: list[ServiceProcess] = []
    feed: AlertFeed | None = None
    view = SharedView(RunView(time.monotonic))
    try:
        if settings.kafka.bootstrap_servers is None:
            broker = LocalBroker.from_settings(settings)
            if not broker.status().answering:
                err.print("starting the local Kafka broker ...")
                broker.start(progress=lambda message: err.print(message))
                started = broker
        bootstrap = resolve_bootstrap(settings)
        options = client_options(settings.kafka, bootstrap)
        err.print(f"Kafka at {bootstrap}")
        kafka = settings.kafka
        created = create_topics(options, kafka.topic_partitions, kafka.replication_factor)
        if created:
            err.print(f"created topics: {', '.join(created)}")

        worker = ServiceProcess.python_module("worker", ["streams", "worker", "-l", "warn"], LOG_DIR)
        worker.start()
        services.append(worker)
        err.print(f"stream worker started (pid {worker.pid}; log {worker.log_path})")
        if notify_channels:
            notifier = ServiceProcess.python_module("notifier", ["notify", "run", "--channels", notify_channels],
                                                    LOG_DIR)  # fmt: skip
            notifier.start()
            services.append(notifier)
            err.print(
                f"notifier started (pid {notifier.pid}; {notify_channels}; log {notifier.log_path}); "
                f"acknowledgement page {settings.notify.base_url}"
            )

        def shown(alert: AlertRaised) -> None:
            view.alert(alert)
            if show == "all" or (show == "high" and alert.severity in URGENT):
                console.print(alert_line(alert), highlight=False, soft_wrap=True)  # one line each, even in CI logs

        sink = ServiceProcess.python_module("sink", ["safeguard", "sink", "run"], LOG_DIR)
        sink.start()
        services.append(sink)
        err.print(f"ClickHouse sink started (pid {sink.pid}; store {settings.clickhouse.url}; log {sink.log_path})")

        feed = AlertFeed(options, shown)
        feed.start()

        event_topics = [spec.name for spec in EVENT_TOPICS]
        worker_group = settings.streams.app_id

        def poll_worker() -> None:
            _poll_group(view.processed, options, worker_group, event_topics)

        with ExitStack() as showing:
            if viewing:
                showing.enter_context(show_progress(console, view))
            already = records_on(options, event_topics)
            if already and not republish:
                err.print(
                    f"the topics already hold {already:,} events from an earlier run: not publishing the year "
                    "again (their alerts were raised then; --republish sends the same events, which the rules "
                    "ignore as duplicates; `safeguard kafka stop` and removing .safeguard/kafka starts from scratch)"
                )
            elif viewing:
                with repeating(POLL_EVERY_S, poll_worker, name="worker-progress"):
                    publish_year(settings, scenario, seed, days, speed, view.published, out=console, err=err)
            else:
                publish_year(settings, scenario, seed, days, speed, out=console, err=err)
            progress = view.processed if viewing else None
            _wait_for_group(err, worker, options, worker_group, event_topics, what="events", on_progress=progress)
            _wait_until_quiet(feed, worker)
        console.print(summary_table(view.state()))
        all_topics = [spec.name for spec in TOPICS]
        _wait_for_group(err, sink, options, settings.clickhouse.consumer_group, all_topics, what="messages", stall_s=30)
        sink.stop()  # the embedded store has one owner at a time: the report opens it once the sink is done
        services.remove(sink)
        _render_report(err)
        if follow:
            err.print("following live alerts; Ctrl-C to stop")
            with ExitStack() as showing:
                if viewing:
                    showing.enter_context(show_progress(console, view, only_changes=True))
                    showing.enter_context(repeating(POLL_EVERY_S, poll_worker, name="worker-progress"))
                while True:
                    _check_alive(worker)
                    time.sleep(1)
    except KeyboardInterrupt:
        err.print("interrupted: stopping what this command started ...")
    finally:
        if feed is not None:
            feed.stop()
        for service in reversed(services):
            code = service.stop()
            err.print(f"stopped the {service.name} (pid {service.pid}, exit {code})")
        if started is not None and not keep_broker:
            err.print("stopping the local Kafka broker ...")
            started.stop()
        elif started is not None:
            err.print("the local broker keeps running; stop it with `safeguard kafka stop`")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@contextmanager
def show_progress(
    console: Console, view: SharedView, *, only_changes: bool = False, every_s: float = PLAIN_EVERY_S
) -> Iterator[None]:
    """The live view, redrawn in place, while the block runs; on a console that is not a terminal (CI logs,
    a pipe) a plain progress line every `every_s` instead, and one more as the block ends."""
    if console.is_terminal:
        drawn = Live(
            get_renderable=lambda: live_view(view.state()), console=console, refresh_per_second=4, transient=True
        )
        with drawn, _logging_to(sys.stderr):  # sys.stderr is now the view's: log records print above it
            yield
        return
    printer = PlainProgress(console, view.state, only_changes=only_changes)
    with repeating(every_s, printer.tick, name="plain-progress"):
        try:
            yield
        finally:
            printer.tick()


@contextmanager
def _logging_to(stream: TextIO) -> Iterator[None]:
    """The root logger's console handlers write to `stream` while the block runs (they hold the stream they
    were given at start-up, which would write across the live view)."""
    handlers = [
        handler
        for handler in logging.getLogger().handlers
        if type(handler) is logging.StreamHandler  # not a FileHandler: a log file stays a log file
    ]
    previous = [handler.stream for handler in handlers]
    for handler in handlers:
        handler.setStream(stream)
    try:
        yield
    finally:
        for handler, before in zip(handlers, previous, strict=True):
            handler.setStream(before)


def _poll_group(
    on_progress: Callable[[int, int], None], options: dict[str, Any], group: str, topics: list[str]
) -> None:
    try:
        done, total = group_progress(options, group, topics)
    except Exception:  # the group may not exist yet while the service starts
        return
    on_progress(done, total)


def _check_alive(worker: ServiceProcess) -> None:
    if not worker.alive():
        raise ServiceFailed(f"the {worker.name} exited unexpectedly; its log ends:\n{worker.log_tail()}")


def _wait_for_group(
    err: Console,
    service: ServiceProcess,
    options: dict[str, Any],
    group: str,
    topics: list[str],
    *,
    what: str,
    stall_s: float | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> None:
    """Until `service`'s consumer group has committed every record on `topics` (`what` names them in messages).

    With `stall_s`, stop waiting once its commits have not moved for that long (stopping a sink flushes it).
    With `on_progress`, each poll goes there (the live view) instead of a message every few seconds.
    """
    last, shown_at, moved_at = -1, 0.0, time.monotonic()
    while True:
        _check_alive(service)
        try:
            done, total = group_progress(options, group, topics)
        except Exception:  # the group may not exist yet while the service starts
            done, total = 0, 1
        else:
            if on_progress is not None:
                on_progress(done, total)
        if done >= total:
            err.print(f"the {service.name} has processed all {total:,} {what}")
            return
        if done != last:
            last, moved_at = done, time.monotonic()
        elif stall_s is not None and time.monotonic() - moved_at >= stall_s:
            err.print(
                f"the {service.name}'s commits have not moved for {stall_s:.0f} s ({done:,} / {total:,}); stopping it"
            )
            return
        if on_progress is None and time.monotonic() - shown_at >= 5:
            err.print(f"{service.name} progress: {done:,} / {total:,} {what}")
            shown_at = time.monotonic()
        time.sleep(1)


def _render_report(err: Console) -> None:
    out = Path(".safeguard/report.html")
    done = subprocess.run([sys.executable, "-m", "safeguard", "report", "--out", str(out)], check=False)
    if done.returncode == 0:
        err.print(f"the analysts' report: {out.resolve()} (open it in a browser; `safeguard report --open`)")
    else:
        err.print(f"[yellow]the report could not be rendered (exit {done.returncode}); see above[/yellow]")


def _wait_until_quiet(feed: AlertFeed, worker: ServiceProcess, quiet_s: float = 3.0) -> None:
    """Alerts raised by the last events (and the incident → child repartition) arrive just after the commit."""
    count, since = feed.count, time.monotonic()
    while time.monotonic() - since < quiet_s:
        _check_alive(worker)
        time.sleep(0.5)
        if feed.count != count:
            count, since = feed.count, time.monotonic()
