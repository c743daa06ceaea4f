# Bringing the board onto the network: Wi-Fi from config.json, the host
# name HUB<serial> (mDNS answers HUB<serial>.local) and the clock by NTP.
# Part of the board seam with board.py, for boot.py and app's upkeep
# retries only: it is unloaded after each use, so none of it stays in the
# heap.
import time

from firmware.seam import board, memory
from firmware.seam.board import log

# boot.py waits this long for Wi-Fi, then main.py starts and the upkeep
# retries. Under the 10 s mpremote allows a soft reset, so deploying to a
# board whose network is down still works.
WAIT_S = 8
NTP_TIMEOUT_S = 1


def boot(argv):
    # boot.py's work. Never raises but for Ctrl-C: MicroPython may skip
    # main.py after a boot.py that failed.
    from firmware.flash import config
    from firmware.flash.datafolder import data_dir

    try:
        up(config.load(data_dir(argv) + "/config.json"), WAIT_S)
    except config.ConfigError as e:
        log("boot: %s: no network set-up" % e)
    except Exception as e:
        log("boot: network set-up failed (%s: %s)" % (type(e).__name__, e))
    memory.release("seam.netup", "flash.config", "flash.datafolder")


def up(cfg, wait_s):
    # Joins the configured Wi-Fi unless connected, waiting up to wait_s
    # (the upkeep's retries: 0), then sets the clock once connected.
    try:
        import network
    except ImportError:
        if cfg["wifi"]:
            log("wifi: this port has no Wi-Fi; skipped (the host's network is the OS's)")
        return
    wlan = network.WLAN(network.STA_IF)
    if not wlan.isconnected() and cfg["wifi"]:
        join(network, wlan, cfg["wifi"], "HUB" + cfg["serial"], wait_s)
    if wlan.isconnected() and not board.settled():
        set_clock()


def join(network, wlan, wifi, name, wait_s):
    # Waits up to wait_s for the connection; the driver goes on trying
    # after that. The password is never logged.
    import binascii

    import machine

    wlan.active(True)
    if wlan.status() != network.STAT_CONNECTING:  # else the driver is at it
        try:
            network.hostname(name)  # before joining: DHCP and mDNS carry it
        except ValueError as e:  # longer than the port allows (32 on the ESP32)
            log("wifi: host name %s refused (%s)" % (name, e))
        wlan.connect(wifi["ssid"], wifi["password"])  # returns at once
        # The chip's id is its MAC: what a router lists the board by.
        log("wifi: joining '%s' as %s.local (MAC %s)"
            % (wifi["ssid"], name, binascii.hexlify(machine.unique_id(), ":").decode()))
    for _ in range(wait_s * 10):
        if wlan.isconnected():
            break
        time.sleep_ms(100)
    if wlan.isconnected():
        log("wifi: connected, address %s" % wlan.ifconfig()[0])
    else:
        log("wifi: not connected yet; retrying in the background")


def set_clock():
    # TLS certificate checks and localtime need the time of day.
    import ntptime

    ntptime.timeout = NTP_TIMEOUT_S
    try:
        ntptime.settime()
        log("clock set by NTP: %s" % board.localtime())
    except OSError as e:  # no answer in time, or no name lookup
        log("clock: NTP failed (%s); retrying later" % e)
