# The two commands of README.md. Both set up first (scripts/setup.sh is idempotent and fast
# when there is nothing to do), so each works on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888

.PHONY: lab test setup setup-test corpus clean-labs

lab: setup
	scripts/lab.sh $(PORT)

test: setup-test
	scripts/test.sh

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

corpus: setup
	$(PY) pcaps/generate.py

clean-labs: setup
	$(VENV)/bin/pktlab lab clean --all
