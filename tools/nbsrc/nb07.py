"""Lesson 07: its cells (tools/make_notebooks.py writes the notebook)."""

from .assignments import assignments
from .cells import CLOSE, CLOSE_MD, IMPORT, code, md


def nb07():
    return [
        md("""
# 07 · Replay your own capture

*About 20 minutes. Before: lesson 02 (lesson 03 helps: explained differences). Root; a capture
of your own if you have one (the bundled `mixed.pcap` otherwise).*

**What you will learn**

- what pktlab makes of a capture from elsewhere: pcap or pcapng, Ethernet, Linux cooked
  (SLL/SLL2) or raw IP (an Ethernet header is synthesized, and the views say so);
- replaying it through every hook and reading the agreement table;
- stepping through it frame by frame, and reading a disagreement when there is one.
"""),
        code(IMPORT),
        md("""
## Your capture

Put your capture's path in the next cell, between the brackets: a path you give always wins.
Without one, the lesson replays the instructor's capture (JupyterLab started with
`PKTLAB_CAPTURE=/path/to/file.pcap`), and without that the bundled `mixed.pcap`; the cell says
which one it took, and why. Frames larger than the lab's MTU are skipped (and counted), as are
frames shorter than an Ethernet header.
"""),
        code('capture = pl.instructor_capture()   # or pl.instructor_capture("/path/to/your.pcap")\n'
             "capture"),
        code("pl.capture_info(capture)"),
        md("## Every hook"),
        code('lab = pl.open_lab("all")\nlab'),
        code("result = lab.replay(capture)\nresult"),
        code("result.plot()"),
        md("""
## Step through it

The agreement table counts; the stepper shows each frame. Red cells are disagreements (a bug in
one of the parsers: please report it with the frame), amber ones are explained differences.
"""),
        code("stepper = pl.PacketStepper(capture, lab=lab)\nstepper"),
        code('result.summary()["disagreements"]'),
        md("""
## Exercises

**1.** Replay `vlan.pcap` with `lab.replay(...)`. Which frame numbers did TC ingress record as
*explained* differences? List them; the checker sends the capture across your lab to check.
"""),
        code('answer = []   # frame numbers, 1-based\n\n'
             'pl.exercises.check_explained(answer, lab, "vlan.pcap")'),
        md("""
**2.** Choose `cooked-sll.pcap` in the stepper. How many bytes at the start of each frame did
pktlab make up (they were not in the capture)? The hex view says. Then think about why the
hooks still agree with the walker on those bytes.
"""),
        code("answer = None   # a number of bytes\n\npl.exercises.check_synthesized(answer)"),
        *assignments(3),
        md("""
## Summary

- pktlab reads pcap and pcapng, Ethernet, Linux cooked and raw IP; where the capture has no
  Ethernet header it makes one up, and every view says so.
- A replay counts, per hook, the frames that agree, differ for a reason the kernel gives, or
  disagree (a bug: report it with the frame); the stepper shows any one frame.
"""),
        md(CLOSE_MD),
        code(CLOSE),
    ]
