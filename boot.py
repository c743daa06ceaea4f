# Runs first on the board, before main.py: Wi-Fi, host name and clock from
# the data folder's config.json, every wait bounded (README, "On the board").
# Its code leaves the heap before main.py starts.
import sys

import firmware.seam.netup

firmware.seam.netup.boot(sys.argv)
