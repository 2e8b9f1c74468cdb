"""`python -m streams worker -l info`: the Faust worker with Faust's own command line.

Before Faust starts, the worker's internal repartition topic is created with the contract topics' partition
count (Faust would create it too, but possibly after its consumer subscribed, and then never read it).

With the RocksDB store (the default) the worker first locks its data directory (`<data_dir>/<app_id>[/<group
instance id>]`): a second worker on the same directory stops at once with a message saying how to separate them.
A partition database ahead of its changelog (the broker's data was removed) is dropped, to be recovered afresh.

Faust's command line turns its web server on by default (port 6066), whatever the app says; here it is on
only when `SAFEGUARD_STREAMS__WEB_PORT` is set, so two workers on one machine never fight over a port.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from kafka import KafkaConsumer
from kafka.structs import TopicPartition

from safeguard.kafka_clients import client_options
from safeguard.kafka_local import create_topics, resolve_bootstrap
from safeguard.settings import load_settings
from schemas.errors import SafeguardError
from streams.app import TABLES, Worker, internal_topics, start_stop_watchdog
from streams.tables import claim_data_dir, discard_state_ahead_of

log = logging.getLogger(__name__)


def main() -> None:
    try:
        settings = load_settings()
        # Held until the process ends: RocksDB allows one process per database.
        data_dir_lock = claim_data_dir(settings.streams.table_dir) if _on_disk(settings.streams.store_url) else None
        settings.streams.table_dir.mkdir(parents=True, exist_ok=True)  # Faust makes only the last level
        bootstrap = resolve_bootstrap(settings)
        # Created here, not by Faust: a topic that appears after the consumer subscribed may never be read.
        kafka = settings.kafka
        options = client_options(kafka, bootstrap)
        create_topics(options, kafka.topic_partitions, kafka.replication_factor, internal_topics(settings))
        worker = Worker(settings, bootstrap)
        if data_dir_lock is not None:
            _discard_other_histories(worker, options)
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
    del data_dir_lock


def _on_disk(store_url: str) -> bool:
    return store_url.split(":", 1)[0] == "rocksdb"


def _discard_other_histories(worker: Worker, options: dict[str, Any]) -> None:
    """Drop local partition databases ahead of their changelog (see `streams.tables.discard_state_ahead_of`)."""
    app_id = worker.app.conf.id
    topics = [f"{app_id}-{table}-changelog" for table in TABLES]
    consumer = KafkaConsumer(**options, enable_auto_commit=False, group_id=None)
    try:
        parts = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or [])]
        ends = {(tp.topic, tp.partition): end for tp, end in consumer.end_offsets(parts).items()}
    except Exception as exc:  # no proof either way: leave the state, Faust checks it again against the broker
        log.warning("could not read the changelogs' end offsets (%s); local table state kept as it is", exc)
        return
    finally:
        consumer.close()
    discard_state_ahead_of(worker.app.conf.tabledir, ends, lambda table: f"{app_id}-{table}-changelog")


if __name__ == "__main__":
    main()
