# Board and host entry point: `micropython main.py --data DIR` on a PC.
# An unhandled error is written to crash.log beside the data folder and
# resets the board (on the host: exit status 1); should even that fail,
# the watchdog resets it. Ctrl-C is no crash: it stops the firmware and
# leaves the REPL. Nor is a stop with a reason (a bad data folder: exit
# status 2; the WSS port cannot be bound: 3): it leaves the REPL too, where
# resetting would only fail the same way again.
import sys

from firmware.shell import app

try:
    app.main(sys.argv)  # returns after Ctrl-C
    app.board.watchdog(0)  # so that the REPL and mpremote keep the board
except SystemExit:
    app.board.watchdog(0)
    raise  # the host's exit status; the board's REPL
except Exception as e:
    try:
        import asyncio

        asyncio.new_event_loop()  # drops the tasks: room for the crash log's code
        from firmware.seam import crashlog

        crashlog.crashed(e, sys.argv)
    except KeyboardInterrupt:  # someone breaking a crash loop gets the REPL
        app.board.watchdog(0)
        raise
