"""Two notifier instances (processes of their own) on one real PostgreSQL store, the session's real Kafka broker and
the real SMTP test server; each is SIGKILLed in turn while alerts stream in and while a manager acknowledges.

Shown: every alert is messaged (none lost), no alert is messaged more than twice (a failover repeats at most the
messages in flight at the kill), every acknowledgement made on the killed instance is kept and published, and a
session and a message link made on one instance work on the other. The number of repeats is printed (-s) and is
what docs/notifier.md reports.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from kafka import KafkaProducer

from notify.store import NotifyStore
from schemas.alerts import AlertRaised
from schemas.codec import decode_alert_lifecycle, encode
from tests.integration.kafka_reader import read_new
from tests.integration.test_notify.conftest import PASSWORD, SmtpServer, create_topics, wait_for
from tests.integration.test_notify.ha import Cluster, delivered, links, login
from tests.unit.test_notify.helpers import make_alert

pytestmark = pytest.mark.integration


@pytest.fixture
def cluster(
    kafka_bootstrap: str, postgres: Any, smtp_server: SmtpServer, password_hash: str, tmp_path: Path
) -> Iterator[Cluster]:
    c = Cluster(
        bootstrap=kafka_bootstrap, store_url=postgres.new_database(), store_password=postgres.password,
        smtp_host=smtp_server.host, smtp_port=smtp_server.port, password_hash=password_hash, workdir=tmp_path,
        topics=create_topics(kafka_bootstrap),
    )  # fmt: skip
    try:
        yield c
    finally:
        c.stop_all()


class Feed:
    """Publishes alerts n..m, one per child (one message each), in small bursts from a thread."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        self.producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
        self.topic = topic
        self.sent: list[AlertRaised] = []

    def publish(self, start: int, stop: int, burst: int = 10, pause_s: float = 0.15) -> None:
        for first in range(start, stop, burst):
            for i in range(first, min(first + burst, stop)):
                alert = make_alert(i, subject=f"child-{i}")
                self.producer.send(self.topic, key=alert.alert_id.encode(), value=encode(alert))
                self.sent.append(alert)
            self.producer.flush(30)
            time.sleep(pause_s)

    def in_background(self, start: int, stop: int) -> threading.Thread:
        thread = threading.Thread(target=self.publish, args=(start, stop), daemon=True)
        thread.start()
        return thread


def _acknowledge(client: httpx.Client, base: str, alert_ids: list[str]) -> None:
    page = client.get(f"{base}/alerts").text
    csrf = re.search(r'name="csrf" value="([^"]*)"', page)
    assert csrf
    for alert_id in alert_ids:
        response = client.post(
            f"{base}/alerts/{alert_id}/ack", data={"note": "on it", "csrf": csrf.group(1)}, follow_redirects=True
        )
        assert response.status_code == 200 and "Acknowledged alert" in response.text, response.text[:300]


def test_killing_either_instance_loses_no_alert_and_no_acknowledgement(
    cluster: Cluster, smtp_server: SmtpServer, postgres: Any, kafka_bootstrap: str
) -> None:
    a = cluster.start("a")
    b = cluster.start("b")
    feed = Feed(kafka_bootstrap, cluster.topics.alerts)
    try:
        _scenario(cluster, smtp_server, postgres, kafka_bootstrap, feed, a, b)
    finally:
        feed.producer.close(10)


def _scenario(
    cluster: Cluster, smtp_server: SmtpServer, postgres: Any, kafka_bootstrap: str, feed: Feed, a: Any, b: Any
) -> None:
    # 1. alerts stream in; `a` is killed in the middle of it
    publishing = feed.in_background(0, 60)
    wait_for(lambda: smtp_server.box.count() >= 15, 60, "the first messages")
    a.kill()
    publishing.join(60)
    feed.publish(60, 80)
    wait_for(lambda: len(delivered(smtp_server.box.messages)) >= 80, 90, "every alert of phase 1, after a's kill")

    # 2. `a` comes back; a manager logs in on `b` and acknowledges; `b` is killed right after the last answer,
    # while more alerts stream in
    a = cluster.start("a2")
    client = httpx.Client(timeout=30)
    login(client, b.base, PASSWORD)
    first = [alert.alert_id for alert in feed.sent[:5]]
    publishing = feed.in_background(80, 140)
    _acknowledge(client, b.base, first)
    b.kill()
    publishing.join(60)

    # the session made on `b` works on `a2`, and so does a message link signed by the killed instance
    client.cookies.set("sg_session", client.cookies.get("sg_session") or "", domain="127.0.0.1")
    page = client.get(f"{a.base}/alerts")
    assert page.status_code == 200 and "Log in" not in page.text
    link = links(smtp_server.box.messages)[0]
    opened = client.get(f"{a.base}{link}", follow_redirects=True)
    assert opened.status_code == 200 and "Log in" not in opened.text
    _acknowledge(client, a.base, [feed.sent[5].alert_id])  # and acknowledging on the survivor

    wait_for(lambda: len(delivered(smtp_server.box.messages)) >= 140, 90, "every alert, after b's kill")
    time.sleep(cluster_lease_s(cluster) + 2)  # any message still to come (a claim taken over late) arrives now

    counts = delivered(smtp_server.box.messages)
    sent_ids = {alert.alert_id for alert in feed.sent}
    assert set(counts) == sent_ids  # no alert lost (and nothing else messaged)
    repeats = {alert_id: n - 1 for alert_id, n in counts.items() if n > 1}
    print(f"\nHA kill test: {len(sent_ids)} alerts, 2 kills, {sum(repeats.values())} repeated messages "
          f"({len(repeats)} alerts), {smtp_server.box.count()} messages in all", flush=True)  # fmt: skip
    assert max(counts.values()) <= 2  # at most one duplicate per alert

    assert cluster.store_url is not None
    store = NotifyStore(cluster.store_url, password=postgres.password)
    try:
        # a repeat only ever comes from a failover: the alert's delivery was claimed by an instance that was killed
        taken_over = {a for e in store.audit_trail(10_000) if e.action == "delivery_taken_over" for a in e.alert_ids}
        assert set(repeats) <= taken_over
        for alert_id in [*first, feed.sent[5].alert_id]:
            record = store.alert(alert_id)
            assert record is not None and record.acked_by == "dana", alert_id
        wait_for(lambda: store.counts()["unpublished_lifecycle"] == 0, 60, "every lifecycle event published")
        assert store.counts()["pending_deliveries"] == 0
    finally:
        store.close()
    events = [decode_alert_lifecycle(r.value) for r in read_new(kafka_bootstrap, {}, [cluster.topics.lifecycle])]
    acked = {e.alert_id for e in events if e.state == "acknowledged"}
    assert acked == {*first, feed.sent[5].alert_id}
    raised = {e.alert_id for e in events if e.state == "raised"}
    assert raised == sent_ids


def cluster_lease_s(cluster: Cluster) -> float:
    return float(cluster.extra.get("claim_lease_s", 3.0))
