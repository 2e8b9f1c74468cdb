"""The acknowledgement page alone in a process of its own, for the load test: the test's client then measures the
server's event loop, not its own. `python -m tests.integration.test_notify.page_server DB PASSWORD_HASH` prints
the port it listens on (127.0.0.1) and serves until SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

from notify.store import NotifyStore
from notify.web import WebConfig, WebUser, make_app
from safeguard.clock import system_clock


async def serve(db: Path, password_hash: str) -> None:
    store = NotifyStore(db)
    config = WebConfig("http://127.0.0.1", b"w" * 32, 3600, {"dana": WebUser(password_hash, "front-door")})
    runner = web.AppRunner(make_app(store, config, system_clock), access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        print(server.sockets[0].getsockname()[1], flush=True)  # type: ignore[attr-defined]
        await stop.wait()
    finally:
        await runner.cleanup()
        store.close()


if __name__ == "__main__":
    asyncio.run(serve(Path(sys.argv[1]), sys.argv[2]))
