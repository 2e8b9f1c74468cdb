"""`safeguard simulate --publish` while its Kafka broker dies: a broker of the test's own, stopped by its own pid
mid-run. The command must end with one clear line (how many events were delivered, that Kafka stopped answering)
and exit 2, like `safeguard publish`, never a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from safeguard.kafka_local import LocalBroker
from tests.integration.own_broker import own_broker  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration


def test_simulate_publish_says_how_far_it_got_when_kafka_stops_answering(
    own_broker: LocalBroker,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    state = own_broker.read_state()
    assert state is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEGUARD_")}
    env.update({"SAFEGUARD_KAFKA__BOOTSTRAP_SERVERS": state.bootstrap, "SAFEGUARD_KAFKA__REQUEST_TIMEOUT_MS": "5000"})
    # Five days paced over about 25 seconds: the broker dies a few seconds in, while events are still going out.
    cmd = [sys.executable, "-c", "from safeguard.cli import main; main()", "simulate", "--scenario", "leicester-2019"]
    cmd += ["--seed", "7", "--days", "5", "--publish", "--speed", str(5 * 86400 / 25)]
    proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)
        assert proc.poll() is None, "the simulation ended before the broker was stopped"
        assert own_broker.stop() is not None  # the broker this test started, by its own pid
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()  # the simulation this test started
            proc.wait(timeout=30)
    assert proc.returncode == 2, f"stdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    lines = err.splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert errors == lines[-1:], f"one error line, the last thing said:\n{err[-3000:]}"
    [line] = errors
    assert "Kafka stopped answering" in line and " events delivered" in line, line
    delivered = int(line.split("Kafka stopped answering: ")[1].split(" of ")[0].replace(",", ""))
    assert delivered > 0, line
    assert "delivered to Kafka" in out, out
