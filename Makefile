# intake: two commands to know - `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test install lint typecheck bench mutate clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/intake demo --storm

test: $(STAMP)
	-$(BIN)/python -m tests.browser_setup
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

# Mutation testing of the core (docs/testing.md); needs INTAKE_TEST_DATABASE_URL. Not part of `make test`.
mutate: $(STAMP)
	$(BIN)/python -m tests.mutate

bench: $(STAMP)
	$(BIN)/intake bench

clean:
	rm -rf $(VENV) .intake test-artifacts mutants mutants-work
