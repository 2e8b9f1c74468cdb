"""Is there a Docker engine? The container tier asks once per session and skips whole modules, with the reason,
when there is none: never a failure, never a silent pass."""

from __future__ import annotations

import functools

import pytest


@functools.cache
def docker_unavailable() -> str | None:
    """None when a Docker engine answers a ping (found the way testcontainers finds it: DOCKER_HOST, the docker
    context, ~/.testcontainers.properties); otherwise why not, in one line."""
    try:
        from testcontainers.core.docker_client import DockerClient

        client = DockerClient()
        client.client.ping()
    except Exception as exc:
        first_line = (str(exc).splitlines() or [""])[0][:300]
        return f"no Docker engine answers ({type(exc).__name__}: {first_line})"
    return None


def require_docker() -> None:
    """Skip the calling test module when there is no Docker engine. Call it at module level."""
    reason = docker_unavailable()
    if reason is not None:
        pytest.skip(
            f"container tier skipped: {reason}; these tests run wherever a Docker engine is reachable",
            allow_module_level=True,
        )
