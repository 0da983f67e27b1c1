"""`python -m pktlab.lessons --reap PID LAB`: the reaper of a notebook's labs (see reaper.py)."""
import sys

from .reaper import main

sys.exit(main(sys.argv[1:]))
