# Everything that differs between an ESP32 and the host, with netup.py for
# what only boot and its retries need (Wi-Fi join, host name, NTP). No other
# firmware module imports machine, network or esp32.
import os
import sys
import time

from firmware.core.ticks import ticks_diff, ticks_ms

try:
    import machine
except ImportError:  # the unix port has no machine.reset / unique_id
    machine = None
try:
    import network
except ImportError:  # the unix port: its network is the OS's
    network = None

_uptime_ms = 0
_last_tick = ticks_ms()


def uptime_s():
    # ticks wrap after days on the board: accumulate the differences, and
    # app.upkeep calls this often enough never to miss one.
    global _uptime_ms, _last_tick
    now = ticks_ms()
    _uptime_ms += ticks_diff(now, _last_tick)
    _last_tick = now
    return _uptime_ms // 1000


def architecture():
    # Native architectures in the order of sys.implementation._mpy's arch
    # field; one string rather than a tuple of them keeps the heap smaller.
    archs = ("none x86 x86_64 armv6 armv6m armv7m armv7em armv7emsp armv7emdp"
             " xtensa xtensawin rv32imc rv64imc").split()
    arch = getattr(sys.implementation, "_mpy", 0) >> 10
    return archs[arch] if arch < len(archs) else "unknown"


def hardware():
    # The board names its chip here ("... with ESP32-S3"); a PC is the unix port.
    if sys.platform in ("linux", "darwin"):
        return "unix port"
    return getattr(sys.implementation, "_machine", sys.platform)


def kernel():
    v = sys.implementation.version
    return "MicroPython %d.%d.%d" % (v[0], v[1], v[2])


def localtime(secs=None):
    t = time.gmtime() if secs is None else time.gmtime(secs)  # gmtime(None) fails
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % t[:6]


def reset():
    if machine is not None and hasattr(machine, "reset"):
        machine.reset()
    sys.exit(1)


_wdt = None


def watchdog(ms=None):
    # watchdog(ms) arms the chip's watchdog, watchdog() feeds it. The
    # ESP32's cannot be stopped, only given a new timeout: 0 sets a day, so
    # that the REPL and mpremote keep the board after Ctrl-C. A no-op on
    # the host.
    global _wdt
    if ms is None:
        if _wdt:
            _wdt.feed()
    elif hasattr(machine, "WDT") and (ms or _wdt):
        _wdt = machine.WDT(timeout=ms or 86400000)


def settled():
    # Nothing left to bring up: Wi-Fi connected (the host's network is the
    # OS's) and the clock set by NTP (the ESP32 starts it at 2000).
    if network and not network.WLAN(network.STA_IF).isconnected():
        return False
    return time.gmtime()[0] >= 2024


def peer(addr):
    # ESP32 sockets give ("ip", port); the unix port gives a raw sockaddr.
    if isinstance(addr, tuple):
        return addr[0], addr[1]
    import socket

    # The unix port's own calls, absent from the ESP32's socket module.
    family, ip, port = socket.sockaddr(addr)  # type: ignore[attr-defined]
    return socket.inet_ntop(family, ip), port  # type: ignore[attr-defined]


def no_delay(sock):
    # mbedTLS sends each handshake message in its own small write; with
    # Nagle on, the client's delayed ACK stalls every handshake ~40 ms.
    import socket

    opt = getattr(socket, "TCP_NODELAY", None)
    if opt is None and sys.platform != "linux":
        return  # a port that does not name the option may not take it
    try:
        sock.setsockopt(getattr(socket, "IPPROTO_TCP", 6), opt or 1, 1)
    except OSError:
        pass


def pause_point(step):
    # Test hooks of the host: PEER_PAUSE_AT=<step> freezes the process at
    # that step of a persist, so a test can kill it there like a power cut;
    # PEER_CRASH_AT=<step> raises there, as a bug would.
    getenv = getattr(os, "getenv", None)  # boards have no environment
    if getenv and getenv("PEER_PAUSE_AT") == step:
        sys.stdout.write("paused at %s\n" % step)
        time.sleep(60)
    if getenv and getenv("PEER_CRASH_AT") == step:
        raise RuntimeError("crash test at %s" % step)


def log(msg):
    # One line per event on the console. Callers never pass secrets here.
    t = time.gmtime()
    sys.stdout.write("%02d:%02d:%02d %s\n" % (t[3], t[4], t[5], msg))

