"""The lessons' exercises: one module per lesson (ex00 ... ex10), each with its checkers, and
what they share (common). The notebooks call them as ``pl.exercises.check_...``: this package's
names are that front door.

Checkers never raise on a wrong answer: they show what is wrong (a CheckResult, falsy until it
passes; NotHere when the check cannot run here), and the notebook goes on. Solutions are kept
apart, in notebooks/solutions/ (tests/test_notebooks.py proves each one passes its checker).
A new lesson's exercises go in a module of their own, exNN.py, named here.
"""

from .common import CheckResult, corpus_frames
from .ex00 import check_wire_order
from .ex01 import check_dscp
from .ex02 import (C_EXERCISES, check_c, check_eth_bounds, check_ihl_minimum, exercise_source,
                   xdp_program_text)
from .ex03 import check_vlan_flag, ttl_rewrite_demo, ttl_rewrite_text, ttl_rewritten
from .ex04 import check_btf_field
from .ex05 import check_native_xdp_order
from .ex06 import check_cheapest_hook
from .ex07 import check_explained
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
    "check_only_above", "check_insert_moment",
]
