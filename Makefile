# The two commands a new user needs (see README.md):
#   make run    start the local Kafka broker and run the pipeline on a simulated year
#   make test   the whole test suite (unit, component, integration against a real broker and chDB)
.PHONY: run test lint typecheck check schemas bootstrap

bootstrap:
	@scripts/bootstrap

run: bootstrap
	.venv/bin/safeguard run

test: bootstrap
	.venv/bin/python -m pytest

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

typecheck: bootstrap
	.venv/bin/mypy safeguard schemas producers streams sinks dashboards notify gateway

check: lint typecheck test

schemas: bootstrap
	.venv/bin/safeguard schemas export
