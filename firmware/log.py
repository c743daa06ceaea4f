# One line per event on the console. Callers never pass secrets here.
import sys
import time


def log(msg):
    t = time.gmtime()
    sys.stdout.write("%02d:%02d:%02d %s\n" % (t[3], t[4], t[5], msg))
