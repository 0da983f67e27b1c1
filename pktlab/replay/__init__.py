"""replay: frames sent through a lab's hooks and every record judged against the walker.

Lives here: the replay itself, batched and pipelined (run), matching records to frames and the
verdicts (compare), and one frame at a time (stepper).

May import: kernel, lab, packet and the base modules.

    from pktlab.replay import replay
    result = replay("pcaps/mixed.pcap")
"""

from .run import Pacer, ReplayResult, Replayer, replay  # noqa: F401  (the room's front door)
