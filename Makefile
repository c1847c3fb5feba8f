# The front door. Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTOS := $(wildcard proto/faregate/v1/*.proto)

.PHONY: demo test check lint types proto proto-check bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

types: $(STAMP)
	$(BIN)/mypy

proto: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=proto --mypy_out=proto \
		--grpc_python_out=proto --mypy_grpc_out=proto \
		$(PROTOS)

proto-check: $(STAMP)
	@rm -rf .proto-check && mkdir -p .proto-check
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m grpc_tools.protoc -Iproto \
		--python_out=.proto-check --mypy_out=.proto-check \
		--grpc_python_out=.proto-check --mypy_grpc_out=.proto-check \
		$(PROTOS)
	@for f in .proto-check/faregate/v1/*; do \
		cmp -s $$f proto/faregate/v1/$$(basename $$f) || { echo "proto drift: $$(basename $$f) differs from 'make proto' output"; rm -rf .proto-check; exit 1; }; \
	done
	@rm -rf .proto-check
	@echo "proto-check: generated code matches the .proto sources"

check: lint types proto-check test

bench: $(STAMP)
	$(BIN)/python -m tests.bench

clean:
	rm -rf $(VENV) .proto-check .pytest_cache .mypy_cache .ruff_cache
