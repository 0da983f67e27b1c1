"""The kernel side of the lessons: how the kprobe hook attaches here (mechanisms), where BTF
says the sk_buff fields are, what XDP and TC programs are handed (xdp_md, __sk_buff), and a
hook's program test-run on a capture (BPF_PROG_TEST_RUN), its records next to the walker's.
"""

import os

from .here import hook_available, in_lab_thread, why_not
from .html import HTML, NotHere, badge, esc, table
from .pcaps import capture_path, frames
from .results import record_summary


def mechanism_table():
    """How the kprobe hook attaches here: each mechanism tried in order, and why not."""
    from .remote import through_daemon
    where = ""
    if os.geteuid() == 0:
        from ..kernel.hooks import MECH_ORDER, choose_kprobe_mechanism
        mech, why = in_lab_thread(choose_kprobe_mechanism)
    elif through_daemon():
        got = _daemon_mechanisms()
        if isinstance(got, NotHere):
            return got
        mech, why, MECH_ORDER = got["used"], got["why"], tuple(got["order"])
        where = " in pktlabd's labs (the workshop daemon tried them, as root)"
    else:
        from ..workshop.client import absent_message
        return NotHere("kprobe mechanisms", absent_message("choosing a mechanism (it loads "
                                                           "programs)"))
    what = {"kprobe": "a breakpoint on __netif_receive_skb_core (needs CONFIG_KPROBES)",
            "fentry": "a BPF trampoline at the function's entry (needs BTF and trampolines)",
            "raw_tracepoint": "the netif_receive_skb tracepoint, raw (always compiled in)"}
    rows = []
    for m in MECH_ORDER:
        if m == mech:
            state = ('<span class="pll-ok">used</span>', "")
            note = "the first mechanism that loaded and attached"
        elif m in why:
            state = ('<span class="pll-no">not used</span>', "")
            note = why[m]
        else:
            state = ("not tried", "")
            note = "a better mechanism already works"
        rows.append([(f"<b>{esc(m)}</b>", ""), state, what[m], (esc(note), "pll-mono")])
    tail = (f"<p>The kprobe hook runs as <b>{esc(mech)}</b> here{esc(where)}.</p>" if mech
            else '<p class="pll-no">No mechanism works here: the kprobe hook is not '
                 f'available{esc(where)}.</p>')
    return HTML(table(["mechanism", "", "what it is", "here"], rows, raw=True) + tail)


def _daemon_mechanisms():
    """pktlabd's answer: {"used", "why", "order"}, or NotHere with its refusal."""
    from ..errors import PktlabError
    from ..workshop.client import Client
    try:
        with Client() as c:
            return c.call("kprobe_mechanisms")[0]
    except PktlabError as e:
        return NotHere("kprobe mechanisms", f"the workshop daemon: {e}")


def btf_offset(path):
    """(offset, size) in bytes of a struct member path in the running kernel, e.g.
    ``btf_offset("sk_buff.len")``, read from /sys/kernel/btf/vmlinux."""
    from ..kernel import btf
    try:
        return btf.vmlinux().offset(path)
    except Exception as e:      # no BTF here, or no such member: say so, do not fail the cell
        return NotHere(f"BTF offset of {path}", str(e))


def _type_name(b, tid):
    """A member's type as C writes it (typedef names kept: __be16, not unsigned short)."""
    from ..kernel import btf as B
    names = {B.KIND_PTR: "*", B.KIND_ARRAY: "[]"}
    t = b._types[tid]
    if t is None:
        return "void"
    kind, name_off = t[0], t[1]
    if name_off:
        prefix = {B.KIND_STRUCT: "struct ", B.KIND_UNION: "union "}.get(kind, "")
        return prefix + b._str(name_off)
    if kind in names:
        inner = b._types[tid][3] if kind == B.KIND_PTR else None
        return (_type_name(b, inner) + " *") if inner is not None else names[kind]
    return "(anonymous)"


def btf_members(struct="sk_buff"):
    """Every member of a kernel struct as this kernel's BTF declares it: name, byte offset,
    size and C type (members of anonymous structs and unions included, at their offsets)."""
    from ..kernel import btf as B
    try:
        b = B.vmlinux()
        tid = b._resolve(b._find(B.KIND_STRUCT, struct))
    except Exception as e:           # no BTF here, or no such struct
        return NotHere(f"members of struct {struct}", str(e))
    rows = []

    def walk(tid, base):
        for name, mtype, bit in b._members(tid):
            inner = b._resolve(mtype)
            if not name and b._types[inner][0] in (B.KIND_STRUCT, B.KIND_UNION):
                walk(inner, base + bit)
                continue
            at = base + bit
            try:
                size = b.size_of(mtype)
            except KeyError:
                size = ""
            where = f"{at // 8}" + (f" (bit {at % 8})" if at % 8 else "")
            rows.append([name, where, size, _type_name(b, mtype)])
    walk(tid, 0)
    return HTML(f"<p>struct {esc(struct)} in kernel {esc(os.uname().release)}: "
                f"{len(rows)} members (from {esc(b.source)})</p>" +
                table(["member", "byte offset", "bytes", "type"], rows, cls="pll-t pll-mono"))


def btf_offsets_table():
    """The sk_buff / net_device / net fields the kprobe hook reads, and where BTF says they are."""
    from ..kernel import btf
    try:
        offs = btf.skb_offsets()
    except Exception as e:       # EnvironmentProblem, PermissionError...
        return NotHere("BTF offsets", str(e))
    rows = [[define, path, offs[define], btf.EXPECTED_SIZES[define]]
            for define, path in btf.SKB_FIELDS.items()]
    return HTML(f"<p>from <code>{esc(btf.vmlinux().source)}</code> (kernel "
                f"{esc(os.uname().release)}), passed to the compiler as -D constants:</p>" +
                table(["-D name", "member", "offset", "size"], rows))


def test_run_table(name, hook="xdp", limit=None):
    """BPF_PROG_TEST_RUN: the hook's program run on each frame of a capture (no lab, no veth),
    its record next to the walker's."""
    if not hook_available(hook):
        return NotHere(f"test run of the {hook} program", why_not(hook))
    import numpy as np

    from ..replay import compare
    from ..packet import record as R
    fr = frames(name, limit)
    from .remote import parse_in_kernel        # (through pktlabd when not root)
    kernel, refused = parse_in_kernel(fr, hook)
    walked = compare.walker_records(fr)
    mask = compare.compare_mask()
    rows = []
    same_n = 0
    for i, f in enumerate(fr):
        if i in refused:
            rows.append([i + 1, len(f), record_summary(walked[i]), "-",
                         (badge("skipped", "refused"), ""), esc(refused[i])])
            continue
        same = bool(np.array_equal(kernel[i:i + 1].view(np.uint8)[mask],
                                   walked[i:i + 1].view(np.uint8)[mask]))
        same_n += same
        diff = "" if same else ", ".join(R.compare_fields(kernel[i], walked[i],
                                                          ignore=compare.IGNORED_FIELDS))
        rows.append([i + 1, len(f), record_summary(walked[i]), record_summary(kernel[i]),
                     (badge("agree" if same else "disagree"), ""), esc(diff)])
    rows = [[r if isinstance(r, tuple) else (esc(r), "") for r in row] for row in rows]
    head = (f"<p>{esc(os.path.basename(capture_path(name)))}: {same_n} of {len(fr) - len(refused)} "
            f"frames the kernel ran give the walker's record, field for field</p>")
    return HTML(head + table(["#", "bytes", "walker", f"{hook} (test run)", "", "differs in"],
                             rows, raw=True))


def ctx_table():
    """What a program is handed: XDP's xdp_md against TC's __sk_buff (from the kernel's BTF)."""
    from ..kernel import btf
    try:
        b = btf.vmlinux()
    except Exception as e:
        return NotHere("xdp_md / __sk_buff", str(e))
    cols = {}
    for s in ("xdp_md", "__sk_buff"):
        try:
            tid = b._find(4, s)              # KIND_STRUCT
            cols[s] = [n for n, _t, _bit in b._members(b._resolve(tid)) if n]
        except KeyError:
            cols[s] = []
    n = max(len(v) for v in cols.values())
    rows = [[cols["xdp_md"][i] if i < len(cols["xdp_md"]) else "",
             cols["__sk_buff"][i] if i < len(cols["__sk_buff"]) else ""] for i in range(n)]
    return HTML(f"<p>xdp_md has {len(cols['xdp_md'])} fields, __sk_buff {len(cols['__sk_buff'])} "
                "(both read from this kernel's BTF):</p>" +
                table(["xdp_md (XDP)", "__sk_buff (TC)"], rows, cls="pll-t pll-mono"))
