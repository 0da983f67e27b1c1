# The two commands of README.md. Both set up first (scripts/setup.sh is idempotent and fast
# when there is nothing to do), so each works on a fresh machine.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8888
# make workshop: LEARNERS accounts, the hub on WORKSHOP_IP:WORKSHOP_PORT (TLS beyond 127.0.0.1)
LEARNERS ?= 3
WORKSHOP_PORT ?= 8000
WORKSHOP_IP ?= 127.0.0.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -E)

.PHONY: lab test setup setup-test corpus clean-labs workshop workshop-down

lab: setup
	scripts/lab.sh $(PORT)

test: setup-test
	scripts/test.sh

# a JupyterHub for LEARNERS people on this host (README: "Running a workshop"); Ctrl-C or
# `make workshop-down` ends it
workshop: setup
	$(SUDO) $(VENV)/bin/pktlab workshop up --learners $(LEARNERS) --port $(WORKSHOP_PORT) --ip $(WORKSHOP_IP)

workshop-down:
	$(SUDO) $(VENV)/bin/pktlab workshop down

setup:
	scripts/setup.sh

setup-test:
	scripts/setup.sh --test

corpus: setup
	$(PY) pcaps/generate.py

clean-labs: setup
	$(VENV)/bin/pktlab lab clean --all
