# Two commands on a fresh Debian/Ubuntu machine with Python 3.11: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: cluster cluster-down cluster-test coverage run test test-chdb test-fast test-shifted lint bench fuzz chaos load services services-down status migrate venv clean assets browser

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $(STAMP)

venv: $(STAMP)

services: $(STAMP)
	bin/services up

# The dashboard's vendored front-end libraries (web/dashboard/package-lock.json), served by the app.
assets:
	bin/vendor-assets

# Debian's Chromium, for the dashboard's end-to-end test.
browser:
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

services-down:
	bin/services down

status:
	bin/services status

# .env (git-ignored) holds this checkout's own random JWT_SECRET, written on the first `make run`
# (bin/dev-env); honcho hands it and every other line of .env to the processes.
migrate: services
	bin/dev-env .env
	ADTIVITY_ENV=$${ADTIVITY_ENV:-development} $(BIN)/honcho run $(BIN)/python -m adtivity migrate

run: migrate assets
	ADTIVITY_ENV=$${ADTIVITY_ENV:-development} PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/honcho start --port $${PORT:-8000}

# ruff (lint and format, pyproject.toml) and mypy (strict for models/ and the domain packages).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: lint services assets browser
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not cluster" $(PYTEST_ARGS)
	$(MAKE) --no-print-directory test-chdb

# The ClickHouse layer's tests (migrations, persist, rollups, drill-downs, analytics, privacy deletes,
# retention) once more on a current ClickHouse: chDB 26.x in process, beside the 18.16 server.
CHDB_TESTS := tests/test_clickhouse.py tests/test_migrations.py tests/test_persist.py tests/test_dedup.py \
  tests/test_rollups.py tests/test_drilldowns.py tests/test_analytics.py tests/test_privacy.py \
  tests/test_housekeeping.py tests/test_retention.py tests/test_companies.py tests/test_query.py \
  tests/test_onchain.py
test-chdb: services
	rm -rf .data/chdb && mkdir -p .data/chdb
	TEST_CLICKHOUSE_URL="chdb:///$(CURDIR)/.data/chdb/adtivity_test" PATH="$(CURDIR)/$(BIN):$$PATH" \
	  $(BIN)/python -m pytest -m "not processes and not cluster" $(CHDB_TESTS) $(PYTEST_ARGS)

# Everything but the tests that start the Procfile's processes (marker `processes`).
test-fast: lint services
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not processes and not cluster" $(PYTEST_ARGS)

# The whole suite under coverage (the processes it starts too: pyproject.toml [tool.coverage]), then
# line and branch coverage per package (bin/coverage-by-package: it fails below 90% of lines).
coverage: services assets browser
	rm -rf .data/coverage && mkdir -p .data/coverage
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m "not cluster" --cov --cov-report= $(PYTEST_ARGS)
	$(BIN)/python bin/coverage-by-package

# The whole system as a cluster on loopback (bin/cluster): web on :8100 and :8101.
cluster: services assets
	$(BIN)/python bin/cluster up

cluster-down:
	$(BIN)/python bin/cluster down

# The cluster's end-to-end tests (tests/cluster) and the short cluster chaos run, on a fresh cluster,
# stopped and deleted afterwards (CLUSTER_KEEP=1 keeps it running).
cluster-test: services assets
	$(BIN)/python bin/cluster down
	$(BIN)/python bin/cluster up
	ADTIVITY_CLUSTER_TESTS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -m cluster tests/cluster $(PYTEST_ARGS); \
	  status=$$?; [ -n "$${CLUSTER_KEEP:-}" ] || $(BIN)/python bin/cluster down; exit $$status

# The whole suite with every clock the tests and their processes read moved a year ahead (the
# libfaketime that the PyPI package `libfaketime` carries; Debian's 0.9.10 breaks timed waits):
# proves no test depends on today's date. The services keep the real time, as servers elsewhere would.
CLOCK_SHIFT ?= +365d
test-shifted: services assets browser
	LD_PRELOAD=$$($(BIN)/python -c 'import libfaketime, os; print(os.path.join(os.path.dirname(libfaketime.__file__), "vendor/libfaketime/src/libfaketime.so.1"))') \
	  FAKETIME="$(CLOCK_SHIFT)" FAKETIME_DONT_FAKE_MONOTONIC=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: services
	command -v wrk >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk)
	cd bench && ../$(BIN)/python ingest_throughput.py && ../$(BIN)/python persist.py && ../$(BIN)/python freshness.py && ../$(BIN)/python realtime.py && ../$(BIN)/python analytics.py && ../$(BIN)/python query.py

# Crashes and outages under load, long form (3 rounds, 60 s outages); figures in docs/reliability.md.
chaos: services
	cd bench && ../$(BIN)/python chaos.py

# The whole system for 5 minutes at 10,000 events/s; figures in docs/benchmarks.md.
load: services assets
	cd bench && ../$(BIN)/python load.py

# The long form of the generated-input suite (make test runs 1,000 API cases).
fuzz: services
	FUZZ_CASES=$${FUZZ_CASES:-10000} PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -s -q tests/test_fuzz.py tests/test_security_sweep.py

clean: services-down
	rm -rf .data
