# An unexpected exception, told for the log. Loaded at the first one only:
# it is not needed while nothing goes wrong.
import io
import sys


def describe(e):
    # An unexpected exception for the log: its type and where it was raised
    # (file:line, innermost last), never its message, which may quote a
    # parameter or a secret.
    show = getattr(sys, "print_exception", None)  # MicroPython's
    out = io.StringIO()
    try:
        if show:
            show(e, out)
    except MemoryError:
        pass
    frames = []
    for line in out.getvalue().split("\n"):
        line = line.strip()
        if line.startswith('File "'):
            path, _, rest = line[6:].partition('", line ')
            frames.append("%s:%s" % (path.split("/")[-1], rest.split(",")[0]))
    return "%s at %s" % (type(e).__name__, " > ".join(frames[-4:]) or "?")
