"""Logging for the command line: one setup at the edge, read from the settings."""

from __future__ import annotations

import logging

# The Kafka clients' own loggers. They log a lost connection with its full traceback, and a broker that
# stops or restarts produces dozens of them; a user needs the one line saying what happened.
_CLIENT_LOGGERS = ("kafka", "aiokafka")


class _FoldClientTracebacks(logging.Filter):
    """Turns a Kafka client's traceback into one line: the exception's type and message after the log message."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.name.split(".", 1)[0] in _CLIENT_LOGGERS:
            exc = record.exc_info[1]
            if exc is not None:
                record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
                record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def configure(level: str) -> None:
    """Root logging at `level`. Below DEBUG the Kafka clients log warnings and up, each on one line."""
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(level)  # also when a handler was already there (basicConfig then does nothing)
    if level == "DEBUG":
        return  # everything, tracebacks included, for whoever is debugging the clients
    for name in _CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)  # they log every connection at INFO
    logging.getLogger("kafka.net.selector").setLevel(logging.ERROR)  # kafka-python's own loop-timing notes
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _FoldClientTracebacks) for f in handler.filters):
            handler.addFilter(_FoldClientTracebacks())
