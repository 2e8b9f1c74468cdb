"""`python -m streams worker -l info`: the Faust worker with Faust's own command line.

Faust's command line turns its web server on by default (port 6066), whatever the app says; here it is on
only when `SAFEGUARD_STREAMS__WEB_PORT` is set, so two workers on one machine never fight over a port.
"""

from __future__ import annotations

import sys

from safeguard.kafka_local import resolve_bootstrap
from safeguard.settings import load_settings
from schemas.errors import SafeguardError
from streams.app import Worker


def main() -> None:
    try:
        settings = load_settings()
        worker = Worker(settings, resolve_bootstrap(settings))
    except SafeguardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    args = sys.argv[1:]
    if args[:1] == ["worker"] and not any(arg.startswith(("--with-web", "--without-web")) for arg in args):
        port = settings.streams.web_port
        args += ["--without-web"] if port is None else ["--web-port", str(port), "--web-bind", "127.0.0.1"]
    sys.argv = [sys.argv[0], *args]
    worker.app.main()


if __name__ == "__main__":
    main()
