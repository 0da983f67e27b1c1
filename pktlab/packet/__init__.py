"""packet: bytes to records, and nothing of the kernel.

Lives here: the declared header layouts (headers), the record mirrored from
bpf_snippets/pktlab_record.h (record), the casting walker that is the Python twin of the C
parser (walker) and its layered view (views), capture files read and written (capture), and
frame rewriting (rewrite).

May import: pktlab's base modules (errors, progress, resources). Never lab, kernel or anything
above them: a learner casts bytes without root and without a kernel.
"""
