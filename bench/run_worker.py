"""`python -m bench.run_worker worker -l info`: the project's worker (`python -m streams worker`) for the benchmarks.

It is `streams/__main__.py` plus one workaround, on unless `BENCH_CHANGELOG_METADATA_WORKAROUND=0`:

The worker's tables use `use_partitioner=True`, so every state write (`Table.__setitem__` -> `send_soon`) asks the
aiokafka producer to partition the key from its cached metadata, without ever fetching it. aiokafka keeps metadata
only for the topics it tracks; while it tracks none it fetches every topic, but the first `send()` (the first alert)
makes it track that topic only, and the next metadata refresh drops the changelog topics. From then on a state
write raises `TypeError: 'NoneType' object is not iterable` (aiokafka producer.py `_partition`) and
`Worker._deliver` retries the batch for ever (republishing its alerts each time): the worker stops making
progress after a few hundred events. Registering the changelog topics with the producer's client (`add_topic`)
keeps their metadata fetched. The benchmarks measure the worker with this, and say so in their notes.
"""

from __future__ import annotations

import asyncio
import logging
import os

from safeguard.kafka_local import resolve_bootstrap
from safeguard.settings import load_settings
from streams.app import Worker

log = logging.getLogger("bench.run_worker")


def main() -> None:
    settings = load_settings()
    worker = Worker(settings, resolve_bootstrap(settings))
    app = worker.app
    if os.environ.get("BENCH_CHANGELOG_METADATA_WORKAROUND", "1") != "0":

        async def track_changelog_metadata() -> None:
            client = app.producer._ensure_producer().client
            names = [table.changelog_topic.get_topic_name() for table in app.tables.values()]
            for name in names:
                await client.add_topic(name)
            for name in names:
                for _attempt in range(60):
                    try:
                        await client._wait_on_metadata(name)
                        break
                    except Exception:  # the topic may not be created yet
                        await asyncio.sleep(0.5)
            log.warning("bench workaround: the producer tracks the changelog topics' metadata: %s", names)

        app.task(track_changelog_metadata)
    app.main()


if __name__ == "__main__":
    main()
