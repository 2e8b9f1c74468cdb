"""`python -m bench.profiled_worker <profile-out> worker -l info`: the worker under cProfile, the dump written however
it stops.

`python -m cProfile -o` writes its dump only when the interpreter exits normally. The worker's stop watchdog leaves
with `os._exit` when a graceful stop takes more than a few seconds (slower under cProfile), so the dump was sometimes
never written and `bench.worker_throughput` summarised a stale one from an earlier run (seen 2026-12-07). Here the
dump is written before any exit, the watchdog's included.
"""

from __future__ import annotations

import cProfile
import runpy
import sys

import streams.app as worker_app


def main() -> None:
    out = sys.argv.pop(1)
    profile = cProfile.Profile()
    leave = worker_app.exit_process

    def dump_then_leave(code: int) -> None:
        profile.disable()
        profile.dump_stats(out)
        leave(code)

    worker_app.exit_process = dump_then_leave  # read when the watchdog and the worker are made, after this
    profile.enable()
    try:
        runpy.run_module("streams", run_name="__main__", alter_sys=True)
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
