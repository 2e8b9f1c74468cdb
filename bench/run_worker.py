"""`python -m bench.run_worker worker -l info`: the project's worker entry point (`streams.__main__`) with one
optional workaround, for runs against code that still has the bug (`BENCH_CHANGELOG_METADATA_WORKAROUND=1`).

The benchmarks run `python -m streams worker` itself (WorkerProcess(workaround=False), the default). Before commit
b2b95cf the worker stalled after a few hundred events: the tables use `use_partitioner=True`, so every state
write (`Table.__setitem__` -> `send_soon`) asks the aiokafka producer to partition the key from its cached metadata
without fetching it, and the producer had no metadata for the changelog topics (`TypeError: 'NoneType' object is
not iterable` in aiokafka producer.py `_partition`, retried for ever by `Worker._deliver`, republishing the batch's
alerts each time). b2b95cf creates the internal topics before Faust starts and the stall is gone in these runs.
aiokafka still keeps metadata only for the topics it tracks once a `send()` has named one, so if it ever comes back
(after a metadata refresh, every 5 minutes by default), this workaround registers the changelog topics with the
producer's client so their metadata keeps being fetched.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from streams.app import Worker

log = logging.getLogger("bench.run_worker")


def _track_changelog_metadata(app: Any) -> None:
    async def track() -> None:
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

    app.task(track)


def main() -> None:
    if os.environ.get("BENCH_CHANGELOG_METADATA_WORKAROUND", "0") == "1":
        original = Worker.__init__

        def patched(self: Worker, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            _track_changelog_metadata(self.app)

        Worker.__init__ = patched  # type: ignore[method-assign]
    from streams.__main__ import main as streams_main

    streams_main()


if __name__ == "__main__":
    main()
