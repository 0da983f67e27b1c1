"""`python -m pktlab.cli`: the `pktlab` command."""
import sys

from . import main

sys.exit(main())
