# The two commands of the README. Each bootstraps what it needs (scripts/bootstrap.sh).
.PHONY: demo test lint bootstrap

bootstrap:
	@bash scripts/bootstrap.sh

demo: bootstrap
	.venv/bin/chenilles demo

test: bootstrap
	@bash scripts/ensure_postgres.sh
	.venv/bin/python -m pytest -n 2 --dist loadgroup

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-logo
