"""`python -m streams worker -l info`: the Faust worker with Faust's own command line."""

from __future__ import annotations

from safeguard.kafka_local import resolve_bootstrap
from safeguard.settings import load_settings
from streams.app import Worker


def main() -> None:
    settings = load_settings()
    Worker(settings, resolve_bootstrap(settings)).app.main()


if __name__ == "__main__":
    main()
