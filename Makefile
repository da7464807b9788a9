# Every target creates .venv when it is missing, so a fresh clone needs only
# `make run` or `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PROTOC := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -I .

.PHONY: run test lint protos protos-check bench chaos reliability-report clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/stigmer local start

test: lint protos-check
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/mypy .

protos: $(VENV)/.installed-dev
	$(PROTOC) --python_out=. --grpc_python_out=. --mypy_out=. --mypy_grpc_out=. protos/*.proto

# Regenerates into a scratch folder and fails on any difference from what is committed.
protos-check: $(VENV)/.installed-dev
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(PROTOC) --python_out=$$tmp --grpc_python_out=$$tmp --mypy_out=quiet:$$tmp --mypy_grpc_out=quiet:$$tmp protos/*.proto && \
	for f in $$tmp/protos/*; do \
		cmp -s "$$f" "protos/$$(basename $$f)" || { echo "stale generated code: protos/$$(basename $$f) (run make protos)"; exit 1; }; \
	done && \
	for f in protos/*_pb2*; do \
		[ -e "$$tmp/$$f" ] || { echo "generated file without a .proto: $$f"; exit 1; }; \
	done && echo "protos up to date"

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench.run_all

# Runners and the daemon SIGKILLed while 500 tasks run (full size; about a minute, at
# most 150 s); exits non-zero when a task is lost, an event sequence breaks, the
# database is damaged or a process is left. `make test` runs a short form.
chaos: $(VENV)/.installed-dev
	$(BIN)/python -m bench.chaos 500 50 3 150

# One table of every reliability figure (chaos, load, faults, fuzzing, security).
reliability-report: $(VENV)/.installed-dev
	$(BIN)/python -m bench.report

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache
