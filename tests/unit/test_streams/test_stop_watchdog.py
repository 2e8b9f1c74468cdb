"""The stop watchdog: once the app is stopping, the process is left after the grace, whatever Faust is waiting for."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from streams.app import EXIT_STOP_TIMEOUT, start_stop_watchdog


@dataclass
class _App:
    should_stop: bool = False


def test_nothing_happens_while_the_app_runs_and_the_process_is_left_after_the_grace_once_it_stops() -> None:
    app = _App()
    left = threading.Event()
    codes: list[int] = []

    def leave(code: int) -> None:
        codes.append(code)
        left.set()

    thread = start_stop_watchdog(app, grace_s=0.05, exit=leave, poll_s=0.01)
    assert not left.wait(0.2), "the watchdog must not act while the app runs"
    app.should_stop = True
    assert left.wait(5)
    thread.join(5)
    assert codes == [EXIT_STOP_TIMEOUT]
    assert thread.daemon, "a daemon thread never keeps a finished process alive"
