"""Live verdicts counted by name: a wrapper pktlab generates around the learner's function.

The kernel counts no program's return codes, and a test run is not the live path. So
`pktlab run` loads, instead of the learner's function itself, a program of pktlab's that calls
it and counts what it returned in a per-CPU array indexed by the code:

    text = wrap(learner_text, "my_prog", "XDP")   # my_prog becomes static __always_inline,
                                                  # pktlab_run(ctx) calls it and counts
    counts = read(prog)                           # {"XDP_PASS": 98, "XDP_DROP": 2}

The learner's lines stay where they were (the only edit is on the definition's own line, and
the wrapper comes after the last line), so the compiler's and the verifier's messages name the
learner's lines as usual (pktlab.kernel.progload's #line directives).
"""

import ctypes
import re

WRAPPER_FUNC = "pktlab_run"
MAP = "pktlab_verdicts"
CONFIG = "pktlab_run_cfg"      # the lab's own source MAC: its frames skip the learner's code
SLOTS = 16                     # return code + 1 for -1..13; the last slot: any other code
OWN = SLOTS                    # the slot after them: the lab's own frames, passed uncounted
CTX = {"XDP": "struct xdp_md", "SCHED_CLS": "struct __sk_buff"}
NAMES = {
    "XDP": {0: "XDP_ABORTED", 1: "XDP_DROP", 2: "XDP_PASS", 3: "XDP_TX", 4: "XDP_REDIRECT"},
    "SCHED_CLS": {-1: "TC_ACT_UNSPEC", 0: "TC_ACT_OK", 1: "TC_ACT_RECLASSIFY",
                  2: "TC_ACT_SHOT", 3: "TC_ACT_PIPE", 4: "TC_ACT_STOLEN", 5: "TC_ACT_QUEUED",
                  6: "TC_ACT_REPEAT", 7: "TC_ACT_REDIRECT", 8: "TC_ACT_TRAP"},
}
PASS = {"XDP": "XDP_PASS", "SCHED_CLS": "TC_ACT_OK"}
# The lab's kernel sends a frame or two of its own (an MLD report when an interface comes up):
# they carry the lab's source MAC, go through uncounted and never reach the learner's code, so
# that the counts and the maps are the capture's alone.
_WRAPPER = """
BPF_ARRAY({config}, u64, 1);
BPF_PERCPU_ARRAY({map}, u64, {slots});
int {wrapper}({ctx} *ctx)
{{
    void *data = (void *)(long)ctx->data;
    void *data_end = (void *)(long)ctx->data_end;
    u32 slot = {own}, zero = 0;
    u64 source = 0, *own = {config}.lookup(&zero);
    int rc = {passed};
    if (own && *own && data + 12 <= data_end) {{
        __builtin_memcpy(&source, data + 6, 6);
        if (source == *own)
            goto count;
    }}
    rc = {func}(ctx);
    slot = (u32)(rc + 1);
    if (slot > {last})
        slot = {other};
count:;
    u64 *n = {map}.lookup(&slot);
    if (n)
        *n += 1;
    return rc;
}}
"""


def _blank(text):
    """The C with comments, strings and character constants blanked (same length and lines),
    so that scanning it sees only code."""
    def keep_lines(m):
        return re.sub(r"[^\n]", " ", m.group())
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', keep_lines,
                  text, flags=re.S)


def top_level_names(text, name):
    """Offsets of `name(` at file scope (declarations and the definition, not calls)."""
    code = _blank(text)
    depth, out = 0, []
    pat = re.compile(rf"\b{re.escape(name)}\s*\(")
    marks = sorted([(m.start(), "{") for m in re.finditer(r"\{", code)] +
                   [(m.start(), "}") for m in re.finditer(r"\}", code)] +
                   [(m.start(), "n") for m in pat.finditer(code)])
    for i, kind in marks:
        if kind == "{":
            depth += 1
        elif kind == "}":
            depth = max(0, depth - 1)
        elif depth == 0:
            out.append(i)
    return out


def wrap(text, func, prog_type):
    """The learner's C (bytes) with `func` made a static inline helper and pktlab's counting
    program after it. ValueError when `func` is not defined at file scope."""
    if prog_type not in CTX:
        raise ValueError(f"pktlab run counts verdicts of XDP and TC programs, not {prog_type}")
    src = text.decode("latin-1")
    at = top_level_names(src, func)
    if not at:
        raise ValueError(f"{func}: not a function defined in this file")
    for i in reversed(at):
        src = src[:i] + "static __always_inline " + src[i:]
    body = _WRAPPER.format(config=CONFIG, map=MAP, slots=SLOTS + 1, wrapper=WRAPPER_FUNC,
                           ctx=CTX[prog_type], func=func, last=SLOTS - 2, other=SLOTS - 1,
                           own=OWN, passed=PASS[prog_type])
    return (src.rstrip("\n") + "\n" + body).encode("latin-1")


def skip_source(prog, mac):
    """Frames from this source MAC (the lab's own interface, "aa:bb:..") pass uncounted."""
    from .bpfobj import map_update
    value = bytes.fromhex(mac.replace(":", "")) + b"\0\0"
    map_update(prog.maps[CONFIG].fd, ctypes.c_uint32(0), value)


def read(prog):
    """({verdict name: packets}, the lab's own frames passed uncounted) from a wrapped
    program's counting map (summed over CPUs; only verdicts that happened). A code with no
    name is "rc=N"; beyond the array, "other"."""
    from .bpf import possible_cpus
    from .bpfobj import map_lookup
    m = prog.maps[MAP]
    ncpus = possible_cpus()
    names = NAMES[prog.prog_type]
    out, own = {}, 0
    for slot in range(SLOTS + 1):
        raw = map_lookup(m.fd, ctypes.c_uint32(slot), 8 * ncpus)
        n = sum(ctypes.c_uint64.from_buffer_copy(raw, 8 * c).value for c in range(ncpus))
        if n and slot == OWN:
            own = n
        elif n:
            rc = slot - 1
            name = ("other" if slot == SLOTS - 1 else names.get(rc, f"rc={rc}"))
            out[name] = out.get(name, 0) + n
    return out, own
