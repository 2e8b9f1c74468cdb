"""Refuse to start a deployment whose secrets are still the placeholders of .env.example (or empty where required).

Run by the `preflight` service of docker-compose.yml, which every other service waits for
(`condition: service_completed_successfully`): `python preflight.py REQUIRED_NAME ...`. It reads only its own
environment, and looks at every variable whose name says it is a secret (PASSWORD, SECRET, TOKEN, KEY): any value
starting with `change-me` is refused, and so is an empty or unset REQUIRED_NAME. Each problem is one line naming
the variable (never its value); exit 1 when there is any, 0 otherwise. Standard library only: it runs in the
application image and in the tests without the project installed.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping, Sequence

PLACEHOLDER_PREFIX = "change-me"
"""How every secret of .env.example starts (tests/unit/test_deploy/test_env_example.py keeps it so)."""

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|(^|_)KEY$")


def is_placeholder(value: str) -> bool:
    return value.strip().lower().startswith(PLACEHOLDER_PREFIX)


def problems(environment: Mapping[str, str], required: Sequence[str]) -> list[str]:
    """One line per variable that would start the deployment with a placeholder or without a required secret."""
    found = []
    for name in sorted(set(required) | {n for n in environment if SECRET_NAME.search(n)}):
        value = environment.get(name, "")
        if is_placeholder(value):
            found.append(
                f"{name} is still the placeholder of .env.example ({PLACEHOLDER_PREFIX}...): set a real secret in .env"
            )
        elif name in required and not value.strip():
            found.append(f"{name} is not set: set it in .env (see .env.example)")
    return found


def main(argv: Sequence[str], environment: Mapping[str, str]) -> int:
    found = problems(environment, list(argv))
    for line in found:
        print(f"preflight: {line}", file=sys.stderr)
    if found:
        print(
            f"preflight: refusing to start with {len(found)} secret(s) to set; then `docker compose up -d` again",
            file=sys.stderr,
        )
        return 1
    print(f"preflight: {len(argv)} required secrets set, no placeholder left")
    return 0


if __name__ == "__main__":
    # The one reader of the environment outside safeguard/settings.py: this job checks the deployment's own
    # variables (compose's ClickHouse and Grafana passwords are no application setting) before any code of it runs.
    sys.exit(main(sys.argv[1:], os.environ))  # noqa: TID251
