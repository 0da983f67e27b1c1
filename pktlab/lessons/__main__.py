"""`python -m pktlab.lessons --reap PID LAB`: the reaper of a notebook's labs (see LiveLab)."""
import sys

from . import _main

sys.exit(_main(sys.argv[1:]))
