# MicroPython manifest: the firmware frozen into your own MicroPython image,
# so its bytecode runs from flash instead of taking about 57 KB of GC heap.
#
# In a MicroPython checkout (v1.24 or newer, ESP-IDF set up as its
# ports/esp32/README.md says):
#
#   cd ports/esp32
#   make BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/this/manifest.py
#   # ESP32_GENERIC_S3 / ESP32_GENERIC_C3 for those chips
#
# then flash build-ESP32_GENERIC/firmware.bin as the README says and
# `make provision`; no `make deploy` is needed. A frozen boot.py and main.py
# run in place of files of those names on flash; and delete any firmware/
# folder left on flash by an earlier deploy, since the filesystem comes before
# the frozen modules on sys.path.
#
# This file is read by MicroPython's tools/manifestfile.py, not by Python.

# Everything the stock image of this port freezes (asyncio, _boot, inisetup, ...).
include("$(PORT_DIR)/boards/manifest.py")

# The firmware package (firmware/__init__.py and its modules), and the two
# entry modules, all relative to this file's folder.
package("firmware")
module("boot.py")
module("main.py")
