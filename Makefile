# The two set-up commands of the README: `make demo` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SCENARIO ?= migration_failed

.PHONY: demo test test-fast install install-test install-sandbox sshd docker-engine lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

install: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .

install-test: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'

# The host simulator (sandbox/: docker stand-ins, scenarios, SSH server) is its own package,
# not in the product wheel or image; the demo, the tests and the benchmarks install it.
install-sandbox: $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ./sandbox

# Runs the main job on the embedded default: a sandbox host in-process, no Slack, no server.
demo: install install-sandbox
	$(BIN)/qcc-bot demo --scenario $(SCENARIO)

# The tests need a real OpenSSH server binary (started by the fixtures on loopback) and
# MariaDB on 127.0.0.1:3306 (started here when it is not running).
sshd:
	@command -v /usr/sbin/sshd >/dev/null 2>&1 || { \
	  echo "installing openssh-server for the test fixtures"; \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client >/dev/null; }
	@mkdir -p /run/sshd
	@if ! (echo > /dev/tcp/127.0.0.1/3306) 2>/dev/null; then \
	  echo "starting MariaDB"; start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true; \
	  for i in $$(seq 1 30); do (echo > /dev/tcp/127.0.0.1/3306) 2>/dev/null && break; sleep 1; done; fi

# The `docker`-marked tests (tests/realengine) need a real Docker engine, compose v2, Go with
# the MySQL driver, busybox-static and MariaDB's binaries: installed here when missing, and
# dockerd started when none answers (see realhost/ensure-docker.sh).
docker-engine: install-test
	realhost/ensure-docker.sh $(BIN)

test: install-test install-sandbox sshd docker-engine
	$(BIN)/python -m pytest

# Everything that needs no server (no sshd, no MariaDB, no docker, no listener outside the test
# process) and is not marked slow, on two pytest-xdist workers (the suite's figure lines print in
# `make test` only); markers are set in tests/conftest.py (see pyproject.toml).
test-fast: install-test install-sandbox
	$(BIN)/python -m pytest -q -n 2 -m "not server and not slow"

lint: install-test install-sandbox
	$(BIN)/ruff check .
	$(BIN)/mypy bot handlers sandbox/qcc_sandbox

# One table of every issue-11 figure with its target (about 5-8 minutes on 2 shared cores; needs
# sshd and MariaDB like the tests). BENCH_ARGS: e.g. --quick, --only http,startup,
# --host config:qcc.yaml:test (see docs/benchmarks.md).
bench: install-test install-sandbox sshd
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
