"""Which maps a learner's program may have, and how big: one policy, checked three times.

1. Before the compiler runs: the learner's C may not ask for a pinned or shared table
   (`BPF_TABLE_PINNED`, `BPF_TABLE_SHARED`, `BPF_TABLE_PUBLIC`, "extern"/"export" tables):
   check_source().
2. At BPF_MAP_CREATE, before the kernel allocates anything: bcc creates a program's maps while
   it compiles, so the worker's seccomp filter hands every map creation to pktlab, which reads
   the attributes and answers check_map() (pktlab.kernel.loader).
3. From the map fds pktlab receives (their kernel info), before it uses them: check_map() again.

Refused: map types that hold file descriptors or kernel objects (a DEVMAP entry written by an
unprivileged process sent frames out of another namespace's interface; a PROG_ARRAY runs other
programs; maps of maps, CPUMAP, XSKMAP, SOCKMAP/SOCKHASH, CGROUP_ARRAY, PERF_EVENT_ARRAY, the
storage maps), and more than MAP_BYTES_MAX bytes of maps in one program.
"""

import re

MAP_TYPES = {1: "HASH", 2: "ARRAY", 3: "PROG_ARRAY", 4: "PERF_EVENT_ARRAY", 5: "PERCPU_HASH",
             6: "PERCPU_ARRAY", 7: "STACK_TRACE", 8: "CGROUP_ARRAY", 9: "LRU_HASH",
             10: "LRU_PERCPU_HASH", 11: "LPM_TRIE", 12: "ARRAY_OF_MAPS", 13: "HASH_OF_MAPS",
             14: "DEVMAP", 15: "SOCKMAP", 16: "CPUMAP", 17: "XSKMAP", 18: "SOCKHASH",
             19: "CGROUP_STORAGE", 20: "REUSEPORT_SOCKARRAY", 21: "PERCPU_CGROUP_STORAGE",
             22: "QUEUE", 23: "STACK", 24: "SK_STORAGE", 25: "DEVMAP_HASH", 26: "STRUCT_OPS",
             27: "RINGBUF", 28: "INODE_STORAGE", 29: "TASK_STORAGE", 30: "BLOOM_FILTER",
             31: "USER_RINGBUF", 32: "CGRP_STORAGE", 33: "ARENA"}
#: what a learner's program may declare: tables of plain data
ALLOWED = {"HASH", "ARRAY", "PERCPU_HASH", "PERCPU_ARRAY", "LRU_HASH", "LRU_PERCPU_HASH",
           "LPM_TRIE", "QUEUE", "STACK", "RINGBUF", "BLOOM_FILTER"}
PER_CPU = {"PERCPU_HASH", "PERCPU_ARRAY", "LRU_PERCPU_HASH"}
ARRAYS = {"ARRAY", "PERCPU_ARRAY"}
#: why each refused kind is refused, in the learner's words
WHY = {
    "PROG_ARRAY": "it holds other programs (tail calls), which only pktlab loads",
    "DEVMAP": "it holds network interfaces: a program could send frames out of an interface "
              "outside your lab",
    "DEVMAP_HASH": "it holds network interfaces: a program could send frames out of an "
                   "interface outside your lab",
    "CPUMAP": "it hands frames to other CPUs' kernel threads",
    "XSKMAP": "it holds AF_XDP sockets",
    "SOCKMAP": "it holds sockets", "SOCKHASH": "it holds sockets",
    "REUSEPORT_SOCKARRAY": "it holds sockets",
    "ARRAY_OF_MAPS": "it holds other maps", "HASH_OF_MAPS": "it holds other maps",
    "CGROUP_ARRAY": "it holds cgroups",
    "PERF_EVENT_ARRAY": "it holds perf events (use a RINGBUF or a HASH/ARRAY to pass data "
                        "out)",
    "STACK_TRACE": "it records kernel stacks, a tracing feature",
}
#: all of one program's maps together; a map of 8 GB is refused before the kernel makes it
MAP_BYTES_MAX = 32 << 20
_PINNED = re.compile(r"\bBPF_TABLE_(?:PINNED|SHARED|PUBLIC)\w*\s*\(|"
                     r"\bBPF_\w*TABLE\w*\s*\(\s*\"(?:extern|export|shared)\"|"
                     r"\bBPF_\w+_PINNED\s*\(")


def type_name(t):
    return MAP_TYPES.get(t, f"type {t}")


def map_bytes(kind, key_size, value_size, max_entries, ncpus):
    """The bytes a map asks for: (key + value) x entries (an array stores no keys), each CPU's
    copy counted for per-CPU maps; a ring buffer's max_entries is its size in bytes."""
    if kind in ("RINGBUF", "USER_RINGBUF"):
        return int(max_entries)
    value = (int(value_size) + 7) // 8 * 8 * ncpus if kind in PER_CPU else int(value_size)
    key = 0 if kind in ARRAYS else int(key_size)
    return (key + value) * int(max_entries)


def _mib(n):
    return f"{n / (1 << 20):,.1f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def check_map(name, map_type, key_size, value_size, max_entries, ncpus, used=0):
    """None when the map may be made (with `used` bytes of the program's maps already made),
    else the refusal: {"kind", "map", "message", "meaning", "fix"}."""
    kind = type_name(map_type)
    if kind not in ALLOWED:
        why = WHY.get(kind, "it is not one of the plain data maps learner programs may use")
        return {"kind": "map type not allowed", "map": name, "map_type": kind,
                "message": f"map {name}: BPF_MAP_TYPE_{kind} is not allowed in a learner's "
                           "program",
                "meaning": f"{name} is a {kind} map: {why}. Learner programs get maps of "
                           "plain data only.",
                "fix": "Use a HASH, ARRAY (or their PERCPU_/LRU_ forms), LPM_TRIE, QUEUE, "
                       "STACK or RINGBUF, and return a verdict (XDP_PASS, XDP_DROP, TC_ACT_OK, "
                       "TC_ACT_SHOT) instead of redirecting."}
    size = map_bytes(kind, key_size, value_size, max_entries, ncpus)
    if size + used > MAP_BYTES_MAX:
        held = f" (with {_mib(used)} in the program's other maps)" if used else ""
        return {"kind": "map too large", "map": name, "map_type": kind, "bytes": size,
                "message": f"map {name}: {kind} of {int(max_entries):,} entries = "
                           f"{_mib(size)}{held}; a learner's program may have "
                           f"{_mib(MAP_BYTES_MAX)} of maps",
                "meaning": f"{name} asks the kernel for {_mib(size)} of memory{held}, more "
                           f"than a learner's program may take ({_mib(MAP_BYTES_MAX)} for all "
                           "its maps).",
                "fix": "Declare fewer entries (a lab's capture needs hundreds or thousands, "
                       "not millions), or a smaller value type."}
    return None


def check_source(text):
    """A pinned or shared table in the learner's C: its refusal, else None."""
    code = re.sub(r"/\*.*?\*/|//[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group()),
                  text, flags=re.S)
    m = _PINNED.search(code)
    if not m:
        return None
    line = code.count("\n", 0, m.start()) + 1
    return {"kind": "pinned or shared map", "map": None, "line": line, "at": "source",
            "message": f"line {line}: a pinned or shared table "
                       f"({m.group().rstrip('( ')}) in a learner's program",
            "meaning": "A pinned or shared table outlives your program or is seen by other "
                       "programs (and other people's): learner programs keep their maps to "
                       "themselves.",
            "fix": "Declare the table with BPF_HASH / BPF_ARRAY (or BPF_TABLE(\"hash\", ...)); "
                   "pktlab shows its contents to you after the run."}


def declaration_line(text, name):
    """The learner's line that declares map `name` (the kernel keeps 15 characters of a map's
    name: a longer declared name that starts so counts), else None."""
    if not name:
        return None
    tail = r"\w*" if len(name) >= 15 else ""
    pat = re.compile(rf"\b{re.escape(name)}{tail}\b")
    lines = text.split("\n")
    for want_decl in (True, False):
        for n, line in enumerate(lines, 1):
            if pat.search(line) and (not want_decl or "BPF_" in line):
                return n
    return None
