# Lint gates, part of `make test`: mypy (typed package: py.typed), ruff, and the import-linter
# layer contracts ([tool.mypy], [tool.ruff], [tool.importlinter] in pyproject.toml; the tools come
# with the `test` extra). `make docs-cli` regenerates the CLI reference in README.md, which
# tests/test_readme_cli.py checks against the parser.

LINT_PATHS := py tests bench e2e

.PHONY: lint docs-cli

lint: setup
	PYTHONPATH=py $(VPY) -m mypy
	$(VPY) -m ruff check $(LINT_PATHS)
	PYTHONPATH=py $(VENV)/bin/lint-imports

docs-cli: setup
	PYTHONPATH=py $(VPY) tests/test_readme_cli.py --write

TEST_STEPS += lint
