"""bench: what each hook costs, measured.

Lives here: the test-run micro bench, the live ladder with its traffic generators, the report
text, the chart and the notebook panel.

May import: kernel, lab, packet and the base modules.
"""

from .core import *  # noqa: F401,F403  (until the room is split into its modules)
