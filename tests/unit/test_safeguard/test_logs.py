"""The command line's logging: a Kafka client's lost connection is one line, not a traceback."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from safeguard import logs


@pytest.fixture
def root_logging() -> Iterator[logging.StreamHandler[io.StringIO]]:
    """A root logger with only a handler of this test's, restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    saved_levels = {n: logging.getLogger(n).level for n in ("kafka", "aiokafka", "kafka.net.selector")}
    handler: logging.StreamHandler[io.StringIO] = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    try:
        yield handler
    finally:
        root.handlers[:], root.level = saved
        for name, level in saved_levels.items():
            logging.getLogger(name).setLevel(level)


def _log_lost_connection(logger: str) -> None:
    try:
        raise ConnectionResetError(104, "Connection reset by peer")
    except ConnectionResetError:
        logging.getLogger(logger).error("Error receiving network data closing socket", exc_info=True)


def _output(handler: logging.StreamHandler[io.StringIO]) -> str:
    return handler.stream.getvalue()


def test_a_client_traceback_is_folded_into_one_line(root_logging: logging.StreamHandler[io.StringIO]) -> None:
    logs.configure("INFO")
    _log_lost_connection("kafka.net.transport")
    out = _output(root_logging)
    assert "Traceback" not in out
    assert out.strip() == (
        "ERROR kafka.net.transport: Error receiving network data closing socket "
        "(ConnectionResetError: [Errno 104] Connection reset by peer)"
    )


def test_at_debug_the_client_traceback_is_kept(root_logging: logging.StreamHandler[io.StringIO]) -> None:
    logs.configure("DEBUG")
    _log_lost_connection("aiokafka.conn")
    assert "Traceback (most recent call last)" in _output(root_logging)


def test_our_own_tracebacks_are_never_folded(root_logging: logging.StreamHandler[io.StringIO]) -> None:
    logs.configure("INFO")
    _log_lost_connection("streams.worker")
    assert "Traceback (most recent call last)" in _output(root_logging)


def test_client_info_lines_are_quiet_below_debug(root_logging: logging.StreamHandler[io.StringIO]) -> None:
    logs.configure("INFO")
    logging.getLogger("kafka.conn").info("connecting to 127.0.0.1:9092")
    logging.getLogger("safeguard.simulate").info("1,031 events generated")
    assert _output(root_logging).splitlines() == ["INFO safeguard.simulate: 1,031 events generated"]
