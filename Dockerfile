# syntax=docker/dockerfile:1
# The application image: the `safeguard` command, the Faust stream worker (`python -m streams worker`), the
# ClickHouse sink and the notifier. docker-compose.yml runs each as its own service from this one image.
#
#   docker build -t safeguard:local .
#
# Two stages: `build` makes the project's wheel and installs it with its runtime dependencies into a venv at
# /opt/safeguard; `runtime` copies only that venv onto a fresh slim Python, runs as an unprivileged user and holds
# no compiler, no pip cache, no source tree, no dev tools and no secrets (settings come from the environment).
# Left out on purpose (deploy/image/runtime_requirements.py): the embedded chDB engine (the image talks to a
# ClickHouse server over HTTP) and testcontainers (the container test tier runs on a developer machine or CI).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/safeguard
# Build inputs only (see .dockerignore): the packaging metadata, the packages, the helper that lists what to install.
COPY pyproject.toml README.md ./
COPY safeguard/ safeguard/
COPY schemas/ schemas/
COPY producers/ producers/
COPY streams/ streams/
COPY sinks/ sinks/
COPY dashboards/ dashboards/
COPY notify/ notify/
COPY gateway/ gateway/
COPY deploy/image/runtime_requirements.py /tmp/runtime_requirements.py
RUN python -m pip wheel --no-deps --wheel-dir /wheels . \
 && python /tmp/runtime_requirements.py /wheels/*.whl > /tmp/requirements.txt \
 && /opt/safeguard/bin/pip install --requirement /tmp/requirements.txt \
 && /opt/safeguard/bin/pip install --no-deps /wheels/*.whl \
 && /opt/safeguard/bin/pip uninstall --yes pip setuptools \
 && /opt/safeguard/bin/safeguard --help > /dev/null

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="safeguarding-pipeline" \
      org.opencontainers.image.description="Safeguarding events pipeline: stream worker, ClickHouse sink, notifier"
ENV PATH=/opt/safeguard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# /var/lib/safeguard/notify: the notifier's SQLite state; a named volume mounted there takes this ownership.
RUN groupadd --system --gid 10001 safeguard \
 && useradd --system --uid 10001 --gid safeguard --home-dir /var/lib/safeguard --create-home \
      --shell /usr/sbin/nologin safeguard \
 && install -d -o 10001 -g 10001 -m 0750 /var/lib/safeguard/notify
COPY --from=build /opt/safeguard /opt/safeguard
COPY deploy/healthcheck.py /opt/safeguard/healthcheck.py
WORKDIR /var/lib/safeguard
USER 10001:10001
ENTRYPOINT ["safeguard"]
CMD ["--help"]
