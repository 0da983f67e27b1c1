"""The lessons' exercises: one module per lesson (ex00 ... ex10), each with its checkers, and
what they share (common). The notebooks call them as ``pl.exercises.check_...``: this package's
names are that front door.

Checkers never raise on a wrong answer: they show what is wrong (a CheckResult, falsy until it
passes; NotHere when the check cannot run here), and the notebook goes on. Their feedback
teaches (where to look, what to compare) and never states the answer: not in a wrong answer's
message, not in what the blank starting answer prints. Solutions are kept
apart, in notebooks/solutions/ (tests/test_notebooks.py proves each one passes its checker).
A new lesson's exercises go in a module of their own, exNN.py, named here.

The numbered assignments (check_a1 ... check_a5) take a whole program the learner wrote in C
(text, or what `%%bpf` makes: an object with .source, .hook, .func): loaded through the learner
loader, run on every corpus frame, and, for assignment 4, in a real lab. What they share is in
assignments.py; each checker sits with its lesson (02: A1, A4; 03: A2, A5; 07: A3).
"""

from .common import CheckResult, corpus_frames
from .ex00 import check_pretend, check_wire_order
from .ex01 import check_doff, check_dscp
from .ex02 import (C_EXERCISES, check_a1, check_a4, check_c, check_eth_bounds, check_ihl_minimum,
                   check_never_sent, exercise_source, xdp_program_text)
from .ex03 import (check_a2, check_a5, check_qinq_tags, check_ttl_one, check_vlan_flag,
                   ttl_rewrite_demo, ttl_rewrite_text, ttl_rewritten, with_ttl)
from .ex04 import check_btf_field, check_kcopy_status
from .ex05 import check_longer_leg, check_native_xdp_order
from .ex06 import check_cheapest_hook, check_netfilter_place
from .ex07 import check_a3, check_explained, check_synthesized
from .ex08 import check_belt_order, check_insert_moment, check_only_above
from .ex09 import (MISTAKES, check_hash_connected, check_lookup, check_timewait_lookup,
                   firewall_source, variant_source)
from .ex10 import check_join_token, check_only_path1_policy, check_rto_reading

__all__ = [
    "C_EXERCISES", "exercise_source", "check_c", "check_eth_bounds", "check_ihl_minimum",
    "check_dscp", "check_wire_order", "check_btf_field", "check_native_xdp_order",
    "check_vlan_flag", "check_explained", "check_cheapest_hook", "ttl_rewrite_demo",
    "xdp_program_text", "MISTAKES", "check_lookup", "check_hash_connected",
    "check_timewait_lookup", "firewall_source", "variant_source", "check_belt_order",
    "check_only_above", "check_insert_moment", "check_pretend", "check_doff", "check_never_sent",
    "check_qinq_tags", "check_ttl_one", "with_ttl", "check_kcopy_status", "check_longer_leg",
    "check_netfilter_place", "check_synthesized",
    "check_a1", "check_a2", "check_a3", "check_a4", "check_a5",
]
