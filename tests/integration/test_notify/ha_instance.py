"""One notifier instance in a process of its own, for the kill test (test_ha_kill.py) and bench/notify_failover.py:
`python -m tests.integration.test_notify.ha_instance CONFIG.json`. The file holds the notify settings, the broker,
the topics, the rota file and the clock's offset from the wall clock (the same for every instance, so that routing
does not depend on when the test runs). Runs until SIGTERM, or until it is killed."""

from __future__ import annotations

import json
import logging
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from notify.rota import load_rota
from notify.service import NotifierService, Topics
from safeguard.kafka_clients import client_options
from safeguard.settings import KafkaSettings, NotifySettings


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = NotifySettings(**config["settings"])
    offset = timedelta(seconds=float(config["clock_offset_s"]))
    bootstrap = str(config["bootstrap"])
    service = NotifierService(
        settings, client_options(KafkaSettings(bootstrap_servers=bootstrap), bootstrap),
        load_rota(Path(config["rota"])), clock=lambda: datetime.now(UTC) + offset,
        topics=Topics(**config["topics"]),
    )  # fmt: skip
    signal.signal(signal.SIGTERM, lambda signum, frame: service.stop())
    service.run()


if __name__ == "__main__":
    main(sys.argv[1])
