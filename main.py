# Board and host entry point: `micropython main.py --data DIR` on a PC.
import sys

from firmware import app

app.main(sys.argv)
