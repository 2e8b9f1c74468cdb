"""The integration suite's notifier tests again, unchanged, against the apache/kafka container of
docker-compose.yml: alerts become grouped messages and lifecycle events, refused email is retried until accepted,
escalation runs on the clock and a restart neither loses nor repeats (a real SMTP server and webhook endpoint, as
in the integration tier; only the broker differs)."""

from __future__ import annotations

import pytest

from tests.containers.engine import require_docker
from tests.integration.test_notify.conftest import password_hash, smtp_server, webhook_endpoint
from tests.integration.test_notify.test_service import (
    harness,
    test_alerts_become_grouped_messages_and_lifecycle_events,
    test_escalation_on_the_clock_and_a_restart_that_neither_loses_nor_repeats,
    test_refused_email_is_retried_until_accepted,
)

require_docker()
pytestmark = pytest.mark.containers

__all__ = [
    "harness",
    "password_hash",
    "smtp_server",
    "test_alerts_become_grouped_messages_and_lifecycle_events",
    "test_escalation_on_the_clock_and_a_restart_that_neither_loses_nor_repeats",
    "test_refused_email_is_retried_until_accepted",
    "webhook_endpoint",
]
