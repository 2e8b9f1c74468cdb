"""`python -m streams worker -l info`: the Faust worker with Faust's own command line.

Before Faust starts, the worker's internal repartition topic is created with the contract topics' partition
count (Faust would create it too, but possibly after its consumer subscribed, and then never read it).

Faust's command line turns its web server on by default (port 6066), whatever the app says; here it is on
only when `SAFEGUARD_STREAMS__WEB_PORT` is set, so two workers on one machine never fight over a port.
"""

from __future__ import annotations

import sys

from safeguard.kafka_clients import client_options
from safeguard.kafka_local import create_topics, resolve_bootstrap
from safeguard.settings import load_settings
from schemas.errors import SafeguardError
from streams.app import Worker, internal_topics, start_stop_watchdog


def main() -> None:
    try:
        settings = load_settings()
        bootstrap = resolve_bootstrap(settings)
        # Created here, not by Faust: a topic that appears after the consumer subscribed may never be read.
        kafka = settings.kafka
        options = client_options(kafka, bootstrap)
        create_topics(options, kafka.topic_partitions, kafka.replication_factor, internal_topics(settings))
        worker = Worker(settings, bootstrap)
    except SafeguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    args = sys.argv[1:]
    if args[:1] == ["worker"] and not any(arg.startswith(("--with-web", "--without-web")) for arg in args):
        port = settings.streams.web_port
        args += ["--without-web"] if port is None else ["--web-port", str(port), "--web-bind", "127.0.0.1"]
    sys.argv = [sys.argv[0], *args]
    start_stop_watchdog(worker.app)  # SIGTERM stops the worker within seconds, even with the broker away
    worker.app.main()


if __name__ == "__main__":
    main()
