# The crash log: crash.log beside the data folder (/crash.log on the board,
# which `make logs` prints), one entry per unhandled error. The file is
# kept under LOG_MAX bytes: the oldest entries make room for the newest, so
# a crash loop never fills the flash. Loaded only at a crash, when the heap
# may be short and fragmented: the old log is copied in small pieces.
import io
import os
import sys
import time

from firmware.seam import board, memory

LOG_MAX = 4096
ENTRY_MAX = 1024  # of a longer traceback, its end is kept: the error itself
MARK = b"=== "  # starts every entry
CHUNK = 256


def crashed(e, argv):
    # main.py's last word on an unhandled error: the console, the log, a
    # pause in which Ctrl-C stops a crash loop (the watchdog is off for
    # it), a reset.
    sys.print_exception(e)
    memory.collect()
    try:
        board.log("crash logged to %s; resetting in 2 s" % write(e, argv))
    except Exception as err:  # a full or failing flash: reset all the same
        board.log("crash log not written (%s)" % type(err).__name__)
    board.watchdog(0)
    time.sleep(2)
    board.reset()


def write(e, argv):
    # Appends e's entry; returns the log's path.
    from firmware.flash.datafolder import data_dir

    folder = data_dir(argv)
    path = folder[:folder.rfind("/") + 1] + "crash.log"
    data = entry(e)
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        _copy_tail(path, out, LOG_MAX - len(data))
        out.write(data)
    try:
        os.remove(path)  # FAT's rename does not overwrite
    except OSError:
        pass
    os.rename(tmp, path)
    return path


def entry(e):
    # Exception messages here never carry secrets; the cap bounds them.
    buf = io.StringIO()
    sys.print_exception(e, buf)
    text = buf.getvalue().encode()
    if len(text) > ENTRY_MAX:
        i = len(text) - ENTRY_MAX
        while text[i] & 0xC0 == 0x80:  # not inside a UTF-8 character
            i += 1
        text = b"...\n" + text[i:]
    head = "%s, up %d s\n" % (board.localtime(), board.uptime_s())
    return MARK + head.encode() + text


def _copy_tail(path, out, room):
    # The newest whole entries of the old log that fit in room bytes,
    # whatever the file has become.
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        size = f.seek(0, 2)
        if size > room:
            f.seek(size - room)
            f.readline(CHUNK)  # the rest of a cut line
            while True:
                at = f.tell()
                line = f.readline(CHUNK)
                if not line or line.startswith(MARK):
                    break
            f.seek(at)
        else:
            f.seek(0)
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            out.write(chunk)
