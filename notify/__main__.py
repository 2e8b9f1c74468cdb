"""`python -m notify run ...`: the same as `safeguard notify run ...` (how `safeguard run --notify` starts it)."""

from __future__ import annotations

import sys

from safeguard.cli import cli


def main() -> None:
    cli(["notify", *sys.argv[1:]], prog_name="python -m notify")


if __name__ == "__main__":
    main()
