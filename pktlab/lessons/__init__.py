"""What the lesson notebooks call: the one import of every notebook.

    from pktlab import lessons as pl

    pl.doctor_table()                     # what works here, and why
    frame = pl.frames("tcp-http.pcap")[3]
    pl.PacketView(frame)                  # layered hex view (pktlab/views.py)
    lab = pl.open_lab(["xdp", "tc-ingress"])   # a live lab with hooks attached (or why not)
    lab.replay("vlan.pcap")               # the agreement table
    pl.PacketStepper("mixed.pcap", lab=lab)    # the widget
    pl.close_all()                        # the last cell of every notebook

Nothing happens at import: the doctor, bcc, scapy, ipywidgets and matplotlib are loaded on
first use. Names from the rest of pktlab that lessons need are re-exported lazily (module
``__getattr__``), so the notebook's first cell stays one import.

Labs opened here are owned three times over, because a notebook is not a ``with`` block:
- the notebook's last cell calls ``close_all()`` (the normal way);
- an atexit handler closes whatever is still open when the kernel shuts down normally;
- a small reaper process, started with the lab and waiting on the kernel's pidfd, removes the
  lab's namespaces when the kernel dies without running atexit (SIGKILL, a crash). close() stops
  the reaper. The next ``Lab()`` anywhere also removes stale labs (pktlab/lab.py).

A hook the doctor could not prove here is never attached: the lab opens with the hooks that work,
and every table says why the others are missing. Set ``PKTLAB_PRETEND_MISSING=kprobe`` (or
``xdp,tc-ingress``, or ``all``) to see a lesson as a learner without those hooks would.
"""

import atexit
import html
import os
import re
import subprocess
import sys
import threading

from .. import resources

__all__ = [
    "doctor", "doctor_table", "hook_available", "why_not", "hooks_table", "pcaps_dir",
    "capture_path", "captures", "read", "frames", "walk", "walk_record", "cast_table",
    "layers_table", "open_lab", "LiveLab", "close_all", "show_source", "mechanism_table",
    "btf_offsets_table", "btf_offset", "test_run_table", "capture_info", "ctx_table",
    "xdp_rewrite_demo", "instructor_capture", "bench_panel", "run_bench", "bench_chart", "bench_text", "HOOKS", "WIRE_ORDER", "LAB_PREFIX",
]

def in_lab_thread(fn, *args, **kwargs):
    """Call ``fn`` where netlink works: on pktlab's netlink thread when this thread runs an
    asyncio loop (a Jupyter kernel's main thread does), directly otherwise (pktlab.lab.nl.call).

    pktlab.lab.nl already does this for every netlink call; running a whole lesson step there as
    well keeps the steps of one notebook in order."""
    from ..lab import nl
    return nl.call(fn, *args, **kwargs)


def _in_lab_thread(method):
    """Decorator: run the method with in_lab_thread()."""
    import functools

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        return in_lab_thread(method, *args, **kwargs)
    return wrapper


HOOKS = ("xdp", "tc-ingress", "tc-egress", "kprobe")
WIRE_ORDER = ("tc-egress", "kprobe", "xdp", "tc-ingress")
#: notebook labs are named plnb + 6 hex digits; tests look for leftovers by this prefix
LAB_PREFIX = "plnb"
PRETEND_ENV = "PKTLAB_PRETEND_MISSING"

# Lazy re-exports: name -> (module, attribute), modules by the name lessons know them by
_MODULES = {"headers": "packet.headers", "record": "packet.record", "compare": "replay.compare",
            "bpf": "kernel.bpf", "btf": "kernel.btf", "exercises": "lessons.exercises",
            "plots": "lessons.plots", "widgets": "lessons.widgets", "views": "packet.views",
            "bench": "bench", "capture": "packet.capture", "walker": "packet.walker",
            "hooks": "kernel.hooks", "replay": "replay"}
_LAZY = {
    "PacketView": ("views", "PacketView"),
    "SideBySide": ("views", "SideBySide"),
    "side_by_side": ("views", "side_by_side"),
    "PacketStepper": ("widgets", "PacketStepper"),
    "HookChooser": ("widgets", "HookChooser"),
    "BenchPanel": ("bench", "BenchPanel"),
    "plot_bench": ("bench", "plot"),
    "conveyor_belt": ("plots", "conveyor_belt"),
    "agreement_plot": ("plots", "agreement"),
    "walk": ("walker", "walk"),
    "walk_record": ("walker", "walk_record"),
}


def __getattr__(name):
    import importlib
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(f"pktlab.{_MODULES[mod]}"), attr)
    if name in _MODULES:
        return importlib.import_module(f"pktlab.{_MODULES[name]}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(__all__) | set(_LAZY) | set(_MODULES))


# --- HTML --------------------------------------------------------------------------------------

CSS = """<style>
.pll-t{border-collapse:collapse;font-size:12.5px;margin:4px 0;line-height:1.35}
table.pll-t th,table.pll-t td{border:1px solid #d0d7de;padding:2px 7px;text-align:left !important;
 vertical-align:top}
table.pll-t th{background:#f3f5f7}
table.pll-t td.pll-num{text-align:right !important;font-variant-numeric:tabular-nums}
.pll-t td.pll-mono,.pll-mono{font-family:var(--jp-code-font-family,monospace)}
.pll-ok{color:#1a7f37;font-weight:600}.pll-no{color:#cf222e;font-weight:600}
.pll-diff{background:#ffd7d5 !important;font-weight:600}
.pll-expl{background:#fff1c2 !important}
.pll-badge{display:inline-block;border-radius:9px;padding:0 7px;margin:1px 2px;font-size:11.5px;
 color:#fff;font-weight:600}
.pll-b-agree{background:#1a7f37}.pll-b-explained{background:#bf8700}.pll-b-disagree{background:#cf222e}
.pll-b-lost{background:#8250df}.pll-b-skipped{background:#6e7781}.pll-b-off{background:#afb8c1}
.pll-note{color:#57606a;font-size:12px;margin:2px 0}
.pll-why{border-left:4px solid #bf8700;background:#fff8e1;padding:4px 8px;margin:4px 0;font-size:13px}
.pll-pass{border-left:4px solid #1a7f37;background:#e8f5e9;padding:4px 8px;margin:4px 0}
.pll-fail{border-left:4px solid #cf222e;background:#ffebe9;padding:4px 8px;margin:4px 0}
.pll-log{font-family:var(--jp-code-font-family,monospace);font-size:11.5px;white-space:pre-wrap;
 background:#f6f8fa;border:1px solid #d0d7de;padding:4px;max-height:22em;overflow:auto}
.pll-log .pll-hit{background:#ffd7d5;font-weight:600}
</style>"""


def esc(v):
    return html.escape(str(v))


def badge(verdict, text=None):
    v = verdict if verdict in ("agree", "explained", "disagree", "lost", "skipped") else "off"
    return f'<span class="pll-badge pll-b-{v}">{esc(text or verdict)}</span>'


def table(headers, rows, cls="pll-t", raw=False):
    """An HTML table; cells are escaped unless ``raw`` (then each cell is (html, td-class))."""
    out = [f'<table class="{cls}"><tr>' + "".join(f"<th>{esc(h)}</th>" for h in headers) + "</tr>"]
    for row in rows:
        cells = []
        for c in row:
            if raw:
                text, klass = c if isinstance(c, tuple) else (esc(c), "")
                cells.append(f'<td class="{klass}">{text}</td>' if klass else f"<td>{text}</td>")
            else:
                cells.append(f"<td>{esc(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


class HTML:
    """A displayable piece of HTML (what lesson helpers return)."""

    def __init__(self, body, text=""):
        self.body = body
        self.text = text or re.sub(r"<[^>]+>", " ", body)

    def _repr_html_(self):
        return CSS + self.body

    def __repr__(self):
        return re.sub(r"[ \t]+", " ", self.text).strip()


class NotHere(HTML):
    """What a live helper returns when it cannot run here: the reason, shown, and falsy."""

    def __init__(self, what, why):
        self.what, self.why = what, why
        super().__init__(f'<div class="pll-why"><b>{esc(what)}: not run here.</b> {esc(why)}</div>',
                         f"{what}: not run here. {why}")

    def __bool__(self):
        return False

    def __getattr__(self, name):
        # whatever a cell does next with the result (.plot(), .summary()...) shows the reason
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *a, **k: self

    def __getitem__(self, key):
        return self


# --- the doctor --------------------------------------------------------------------------------

_doctor = None
_doctor_lock = threading.Lock()


def _pretend_missing():
    v = os.environ.get(PRETEND_ENV, "").strip()
    if not v:
        return ()
    return HOOKS if v == "all" else tuple(h.strip() for h in v.split(",") if h.strip())


def doctor(refresh=False):
    """The doctor's report (pktlab/doctor.py), run once per kernel session (about 8 s).

    Running it also compiles every hook program, which later cells then reuse."""
    global _doctor
    with _doctor_lock:
        if _doctor is None or refresh:
            from .. import doctor as d
            if os.geteuid() != 0:
                # doctor.run() would try a lab; say what is wrong without trying
                root = d._check_root().to_dict()
                report = {"ok": False, "kernel": os.uname().release, "checks": [root],
                          "hooks": {h: {"available": False, "via": None,
                                        "why": f"{root['detail']}; fix: {root['fix']}"}
                                    for h in HOOKS}}
            else:
                report, _ = in_lab_thread(d.run)
            for h in _pretend_missing():
                if h in report["hooks"]:
                    report["hooks"][h] = {
                        "available": False, "via": None,
                        "why": f"pretending it is missing ({PRETEND_ENV}="
                               f"{os.environ.get(PRETEND_ENV)}): this is what a learner on a "
                               "machine without it sees"}
            _doctor = report
        return _doctor


def hook_available(hook):
    """True when the doctor proved ``hook`` here (it attached and recorded a frame)."""
    return bool(doctor()["hooks"].get(hook, {}).get("available"))


def why_not(hook):
    """Why ``hook`` is not available here, in the doctor's words ('' when it is)."""
    rep = doctor()
    info = rep["hooks"].get(hook)
    if info is None:
        return f"{hook!r} is not a pktlab hook (choose from {', '.join(HOOKS)})"
    if info["available"]:
        return ""
    why = info["why"]
    failed = [c for c in rep["checks"] if not c["ok"] and getattr(c, "required", True)]
    if why.startswith("not tried") and failed:
        why += ": " + "; ".join(f"{c['name']}: {c['detail']} (fix: {c['fix']})" for c in failed)
    return why


def doctor_table(refresh=False):
    """The doctor as tables: every check with its fix, then every hook with how or why not."""
    rep = doctor(refresh)
    rows = []
    for c in rep["checks"]:
        mark = ('<span class="pll-ok">ok</span>' if c["ok"] else '<span class="pll-no">FAIL</span>', "")
        rows.append([mark, esc(c["name"]), (esc(c["detail"]), "pll-mono"), esc(c["fix"])])
    body = f"<h4>pktlab doctor: kernel {esc(rep.get('kernel', ''))}</h4>"
    body += table(["", "check", "detail", "fix"], rows, raw=True)
    body += hooks_table()._body()
    verdict = ("the lab can run here" if rep["ok"] else
               "the lab cannot run here: the FAIL lines above say what to fix")
    body += f'<p class="{"pll-ok" if rep["ok"] else "pll-no"}">{esc(verdict)}</p>'
    return HTML(body)


_WHERE = {
    "tc-egress": "src veth, clsact egress: the packet leaving (an skb)",
    "kprobe": "__netif_receive_skb_core on dut: a kernel function, reading the sk_buff",
    "xdp": "dut veth: the raw frame, before the kernel builds an skb (generic mode)",
    "tc-ingress": "dut veth, clsact ingress: the skb, after the stack untagged VLANs",
}


class _HooksTable(HTML):
    def __init__(self, rows):
        self.rows = rows
        super().__init__(self._body())

    def _body(self):
        return "<h4>hooks</h4>" + table(["hook", "available", "how / why not", "where it sits"],
                                        self.rows, raw=True)


def hooks_table():
    """Each hook: available or not, how it attaches here or why it cannot."""
    rep = doctor()
    rows = []
    for h in WIRE_ORDER:
        info = rep["hooks"][h]
        ok = info["available"]
        how = (f"via {info['via']}" + (f" — {info['why']}" if h == "kprobe" and info["why"] else "")
               if ok else why_not(h))
        rows.append([(f"<b>{esc(h)}</b>", ""),
                     ('<span class="pll-ok">yes</span>' if ok else '<span class="pll-no">no</span>', ""),
                     (esc(how), "" if ok else "pll-expl"), esc(_WHERE[h])])
    return _HooksTable(rows)


# --- captures ----------------------------------------------------------------------------------

def pcaps_dir():
    """The lessons' capture directory: $PKTLAB_PCAPS, else the bundled captures."""
    return resources.pcaps_dir()


def capture_path(name):
    """A capture by path, or by file name in the capture directory."""
    name = os.fspath(name)
    if os.path.exists(name):
        return name
    p = os.path.join(pcaps_dir(), name)
    if os.path.exists(p):
        return p
    raise FileNotFoundError(f"capture {name!r}: not a file, and not in {pcaps_dir()} "
                            f"(choose from: {', '.join(captures()[:12])}...)")


def captures(directory=None):
    """Capture file names in the capture directory (pcap and pcapng), sorted."""
    d = directory or pcaps_dir()
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if n.endswith((".pcap", ".pcapng", ".cap")))


def read(name, limit=None, problems=None):
    """The frames of a capture as pktlab Frame objects (``.data``, ``.index``, ``.ts_ns``...).

    Damaged files are read leniently: what could not be read goes to ``problems`` (a list)."""
    from ..packet.capture import read_frames
    out = []

    def on_error(p):
        if problems is not None:
            problems.append(p.message())
    for f in read_frames(capture_path(name), on_error=on_error):
        out.append(f)
        if limit and len(out) >= limit:
            break
    return out


def frames(name, limit=None):
    """The frames of a capture as bytes (each starts with an Ethernet header)."""
    return [f.data for f in read(name, limit)]


def capture_info(name):
    """What is in a capture: frames, link types, synthesized headers, problems, statuses."""
    from collections import Counter

    from ..packet.capture import linktype_name
    from ..packet.walker import walk_record
    problems = []
    fr = read(name, problems=problems)
    lts = Counter(linktype_name(f.linktype) for f in fr)
    st = Counter(f"{r.status_name}@{r.layer_name}" for r in (walk_record(f.data) for f in fr))
    synth = sum(f.synthesized_eth for f in fr)
    rows = [["file", capture_path(name)], ["frames", len(fr)],
            ["link types", ", ".join(f"{k} x{v}" for k, v in lts.items()) or "-"],
            ["Ethernet header synthesized", f"{synth} frames" if synth else "none"],
            ["walker: where the parse ended", ", ".join(f"{k} x{v}" for k, v in st.most_common())],
            ["problems reading it", "; ".join(problems) or "none"]]
    return HTML(table(["", ""], rows))


# --- casting, one header at a time -------------------------------------------------------------

def _header_cls(header):
    from ..packet import headers as H
    if isinstance(header, str):
        cls = getattr(H, header, None)
        if cls is None:
            raise ValueError(f"header {header!r}: one of Ethernet, VLAN, ARP, IPv4, IPv6, TCP, "
                             "UDP, ICMP, ICMPv6, IPv6Opt, IPv6Frag")
        return cls
    return header


def cast_table(header, frame, offset):
    """Cast ``frame[offset:]`` to ``header`` (a name or a pktlab.packet.headers class) and show it.

    Every field with its offset, length, raw bytes and meaning. The bounds check comes first,
    as in the C parser: a header that does not fit is not read (the table says which fields
    would lie past the end)."""
    cls = _header_cls(header)
    size = cls.size()
    fits = offset + size <= len(frame)
    check = (f"bounds check: offset {offset} + sizeof({cls.c_struct or cls.__name__}) = "
             f"{offset + size} {'<=' if fits else '>'} {len(frame)} bytes in the frame: "
             + ("the header fits, cast it" if fits else "TRUNCATED: the parser stops here"))
    rows = []
    for f in cls.fields(frame, offset, len(frame)):
        raw = bytes(frame[f.offset:f.offset + f.length]).hex(" ")
        bits = f" (bits {f.bit_offset}..{f.bit_offset + f.bit_length - 1})" if f.bit_length else ""
        rows.append([f.name, f"{f.offset}", f"{f.length}{bits}", raw, f.display])
    body = (f'<div class="{"pll-pass" if fits else "pll-fail"}">{esc(check)}</div>' +
            table(["field", "offset", "bytes", "raw", "value"], rows))
    if not fits:
        body += '<p class="pll-note">fields shown are the ones that lie wholly inside the frame</p>'
    return HTML(body, check)


def layers_table(frame):
    """The walker's layers of a frame: name, offset, length, and why the walk stopped."""
    from ..packet.walker import walk
    w = walk(frame)
    rows = [[ly.name, ly.offset, ly.length, ly.end, ly.note] for ly in w.layers]
    head = f"<p><b>{esc(w.summary())}</b> ({len(w.frame)} bytes)</p>"
    return HTML(head + table(["layer", "offset", "length", "ends at", "note"], rows),
                w.summary())


# --- source -----------------------------------------------------------------------------------

def _source_text(name):
    with open(resources.snippet_path(name)) as f:
        return f.read()


def extract_function(text, fn):
    """The text of C function ``fn`` (from its declaration to its closing brace at column 0)."""
    m = re.search(r"^[^\n;{}]*\b" + re.escape(fn) + r"\s*\([^;{]*\)\s*\{", text, re.M)
    if not m:
        raise ValueError(f"function {fn} not found")
    end = text.index("\n}\n", m.end()) + 3
    # take the comment block just above, if any
    start = m.start()
    above = text[:start]
    cm = re.search(r"(/\*(?:(?!\*/).)*\*/\n)$", above, re.S)
    if cm:
        start -= len(cm.group(1))
    return text[start:end]


def show_source(name, function=None):
    """A file of bpf_snippets/ (or one function of it), highlighted."""
    from IPython.display import Code
    text = _source_text(name)
    if function:
        text = extract_function(text, function)
    return Code(text, language="c")


# --- the kernel side: mechanisms, BTF, test runs ------------------------------------------------

def mechanism_table():
    """How the kprobe hook attaches here: each mechanism tried in order, and why not."""
    if os.geteuid() != 0:
        return NotHere("kprobe mechanisms", "choosing a mechanism loads programs: needs root")
    from ..kernel.hooks import MECH_ORDER, choose_kprobe_mechanism
    mech, why = in_lab_thread(choose_kprobe_mechanism)
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
        rows.append([(f"<b>{esc(m)}</b>", ""), state, esc(what[m]), (esc(note), "pll-mono")])
    tail = (f"<p>The kprobe hook runs as <b>{esc(mech)}</b> here.</p>" if mech else
            '<p class="pll-no">No mechanism works here: the kprobe hook is not available.</p>')
    return HTML(table(["mechanism", "", "what it is", "here"], rows, raw=True) + tail)


def btf_offset(path):
    """(offset, size) in bytes of a struct member path in the running kernel, e.g.
    ``btf_offset("sk_buff.len")``, read from /sys/kernel/btf/vmlinux."""
    from ..kernel import btf
    try:
        return btf.vmlinux().offset(path)
    except Exception as e:      # no BTF here, or no such member: say so, do not fail the cell
        return NotHere(f"BTF offset of {path}", str(e))


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


def _record_summary(r):
    from ..packet import record as R
    s = f"{R.status_name(int(r['status']))}@{R.layer_name(int(r['layer']))}"
    if int(r["sport"]) or int(r["dport"]):
        s += f" {int(r['sport'])}→{int(r['dport'])}"
    if int(r["l7"]):
        s += f" {R.l7_name(int(r['l7']))}"
    return s


def test_run_table(name, hook="xdp", limit=None):
    """BPF_PROG_TEST_RUN: the hook's program run on each frame of a capture (no lab, no veth),
    its record next to the walker's."""
    if not hook_available(hook):
        return NotHere(f"test run of the {hook} program", why_not(hook))
    import numpy as np

    from ..kernel import bpf
    from ..replay import compare
    from ..packet import record as R
    fr = frames(name, limit)
    kernel, refused = in_lab_thread(bpf.parse_in_kernel, fr, hook)
    walked = compare.walker_records(fr)
    mask = compare.compare_mask()
    rows = []
    same_n = 0
    for i, f in enumerate(fr):
        if i in refused:
            rows.append([i + 1, len(f), _record_summary(walked[i]), "-",
                         (badge("skipped", "refused"), ""), esc(refused[i])])
            continue
        same = bool(np.array_equal(kernel[i:i + 1].view(np.uint8)[mask],
                                   walked[i:i + 1].view(np.uint8)[mask]))
        same_n += same
        diff = "" if same else ", ".join(R.compare_fields(kernel[i], walked[i],
                                                          ignore=compare.IGNORED_FIELDS))
        rows.append([i + 1, len(f), _record_summary(walked[i]), _record_summary(kernel[i]),
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


# --- live labs ---------------------------------------------------------------------------------

_open_labs = []
_open_widgets = []
_atexit_registered = False


def _register(obj, bucket):
    global _atexit_registered
    bucket.append(obj)
    if not _atexit_registered:
        atexit.register(close_all, quiet=True)
        _atexit_registered = True


def register_widget(w):
    """Widgets with a close() (steppers, panels) are closed by close_all() too."""
    _register(w, _open_widgets)
    return w


def _start_reaper(lab):
    """A process that removes ``lab`` if this process dies without closing it (SIGKILL)."""
    try:
        return subprocess.Popen([sys.executable, "-m", "pktlab.lessons", "--reap",
                                 str(os.getpid()), lab.name],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
    except OSError:
        return None       # the lab's own stale cleanup remains


def _reap(pid, name):
    import select

    from ..lab.labs import LabState, remove_lab
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        fd = None
    if fd is not None:
        select.select([fd], [], [])
        os.close(fd)
    try:
        st = LabState.load(name)
    except (OSError, ValueError, TypeError):
        return
    if st.owner_pid == pid:
        remove_lab(st)


class LiveLab:
    """A lab with hooks attached, for a notebook: open in one cell, close in the last.

    Opens with the requested hooks the doctor proved here; the others are listed with the
    doctor's reason. When none can run (not root, no bcc...) the object is still made: it is
    falsy, and every method returns the reason instead of failing."""

    def __init__(self, hooks="all", xdp_mode="generic", mtu=1500):
        from ..kernel.hooks import parse_hooks
        self.requested = parse_hooks(hooks)
        self.xdp_mode = xdp_mode
        self.mtu = mtu
        self.unavailable = {}
        self.lab = None
        self.rp = None
        self.error = ""
        self._reaper = None
        self.closed = False
        _register(self, _open_labs)
        self._open()

    # lifecycle
    @_in_lab_thread
    def _open(self):
        from ..errors import PktlabError
        for h in self.requested:
            if not hook_available(h):
                self.unavailable[h] = why_not(h)
        self.hooks = tuple(h for h in self.requested if h not in self.unavailable)
        if not self.hooks:
            self.error = "none of the hooks asked for can run here"
            return
        from ..lab.labs import Lab
        try:
            self.lab = Lab(prefix=LAB_PREFIX, mtu=self.mtu).up()
            self._reaper = _start_reaper(self.lab)
            self._attach(self.hooks)
        except (PktlabError, OSError) as e:
            self.error = f"the lab could not be opened: {e}"
            self.close()

    def _attach(self, hooks):
        from ..replay.run import Replayer, ring_slots_for
        # ns timestamps: the lessons put one packet's hooks in order in time (Belt); the same
        # flags as replay() below, so that both lease one compiled program per hook
        self.rp = Replayer(hooks, xdp_mode=self.xdp_mode, lab=self.lab, precise_ts=True,
                           slots=ring_slots_for()).open()
        self.hooks = tuple(hooks)

    def _detach(self):
        if self.rp is not None:
            rp, self.rp = self.rp, None
            rp.close()

    @_in_lab_thread
    def set_hooks(self, hooks):
        """Attach another set of hooks (the doctor's unavailable ones are left out)."""
        from ..kernel.hooks import parse_hooks
        if not self:
            return
        want = tuple(h for h in parse_hooks(hooks) if hook_available(h))
        if want == self.hooks and self.rp is not None:
            return
        self._detach()
        if want:
            self._attach(want)
        else:
            self.hooks = ()

    @_in_lab_thread
    def close(self):
        """Detach every hook and remove the lab (veth, then namespaces). Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        try:
            self._detach()
        finally:
            try:
                if self.lab is not None:
                    self.lab.close()
            finally:
                if self._reaper is not None:
                    self._reaper.terminate()
                    try:
                        self._reaper.wait(5)
                    except subprocess.TimeoutExpired:
                        self._reaper.kill()
                        self._reaper.wait()
                    self._reaper = None
                if self in _open_labs:
                    _open_labs.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __bool__(self):
        return not self.closed and self.rp is not None

    @property
    def name(self):
        return self.lab.name if self.lab is not None else None

    @property
    def via(self):
        return dict(self.rp.via) if self.rp is not None else {}

    def why(self):
        """Why this lab is not live, in words ('' when it is)."""
        if self:
            return ""
        if self.closed and not self.error:
            return "the lab is closed (the notebook's last cell closes it); re-run the cell " \
                   "that opens it"
        why = self.error
        by_reason = {}
        for h, w in self.unavailable.items():
            by_reason.setdefault(w, []).append(h)
        if by_reason:
            why += ("; " if why else "") + "; ".join(f"{', '.join(hs)}: {w}"
                                                     for w, hs in by_reason.items())
        return why or "no hooks attached"

    def _repr_html_(self):
        rows = []
        for h in WIRE_ORDER:
            if h in self.hooks and self:
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("agree", "attached"), ""),
                             esc(self.via.get(h, ""))])
            elif h in self.unavailable:
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("disagree", "not available"), ""),
                             (esc(self.unavailable[h]), "pll-expl")])
            elif h in self.requested:
                rows.append([(f"<b>{esc(h)}</b>", ""), (badge("off", "detached"), ""), ""])
        if self:
            lab = self.lab
            head = (f"<p><b>lab {esc(lab.name)}</b>: {esc(lab.ns_src)}/{esc(lab.if_src)} "
                    f"{esc(lab.src_ip4)} &harr; {esc(lab.ns_dut)}/{esc(lab.if_dut)} "
                    f"{esc(lab.dut_ip4)}</p>")
        else:
            head = f'<div class="pll-why"><b>no live lab:</b> {esc(self.why())}</div>'
        return CSS + head + table(["hook", "", "how / why not"], rows, raw=True)

    def __repr__(self):
        if self:
            return f"<LiveLab {self.name}: {', '.join(f'{h} ({v})' for h, v in self.via.items())}>"
        return f"<LiveLab not live: {self.why()}>"

    # using it
    @_in_lab_thread
    def run(self, frames_):
        """Send frames across the lab; the Replayer's BatchResult (or None when not live)."""
        if not self:
            return None
        return self.rp.run_batch([bytes(f) for f in frames_])

    def step(self, frame, index=1):
        """One frame across the lab: a StepResult (pktlab/stepper.py), or None when not live."""
        from ..replay.stepper import StepResult
        br = self.run([frame])
        return None if br is None else StepResult(index, br)

    def replay(self, name, limit=None, progress=True, **kw):
        """Replay a capture through the attached hooks: the agreement table (ReplayView)."""
        if not self:
            return NotHere("replay", self.why())
        from ..replay.run import replay as _replay
        path = capture_path(name)
        bar = None
        cb = None
        if progress:
            from ..packet.capture import count_frames
            from ..progress import WidgetBar
            try:
                total = count_frames(path)
            except Exception:           # damaged: replay() reads it leniently, count roughly
                total = 0
            total = min(total, limit) if limit and total else (limit or total)
            bar = WidgetBar(total, "replay")
            from IPython.display import display
            display(bar)
            cb = bar.update
        hooks = self.hooks

        def work():
            # replay() attaches its own hook set on this lab: ours steps aside meanwhile
            self._detach()
            try:
                kw.setdefault("precise_ts", True)
                return _replay(path, hooks=hooks, lab=self.lab, limit=limit, progress=cb,
                               xdp_mode=self.xdp_mode, **kw)
            finally:
                self._attach(hooks)
        try:
            res = in_lab_thread(work)
        finally:
            if bar is not None:
                bar.close()
        return ReplayView(res.summary(), self.unavailable)

    def follow(self, frame):
        """One frame followed through every attached hook: a Belt (timeline and table)."""
        if not self:
            return NotHere("follow a packet", self.why())
        return Belt(self.step(frame), self.via)

    def follow_each(self, name, limit=None):
        """Each frame of a capture followed on its own (one Belt per frame)."""
        if not self:
            return NotHere("follow packets", self.why())
        return [self.follow(f) for f in frames(name, limit)]

    def compare(self, name, limit=None):
        """Every frame of a capture, the walker's record and each hook's verdict (a table)."""
        if not self:
            return NotHere("kernel records next to the walker's", self.why())
        fr = frames(name, limit)
        return BatchView(self.run(fr), self.hooks)


def open_lab(hooks="all", xdp_mode="generic", mtu=1500):
    """A LiveLab: a fresh lab with ``hooks`` attached; close it with close_all() at the end."""
    return LiveLab(hooks, xdp_mode=xdp_mode, mtu=mtu)


def close_all(quiet=False):
    """Close every widget and lab this kernel opened; say what is left (must be nothing)."""
    from ..lab.labs import leftovers
    names = []
    closed_widgets = []
    errors = []
    for w in list(_open_widgets):
        closed_widgets.append(type(getattr(w, "panel", w)).__name__)
        try:
            w.close()
        except Exception as e:      # keep going: the labs must still go
            errors.append(f"{type(w).__name__}: {e}")
        if w in _open_widgets:
            _open_widgets.remove(w)
    for lab in list(_open_labs):
        if lab.name:
            names.append(lab.name)
        try:
            lab.close()
        except Exception as e:
            errors.append(f"lab {lab.name}: {e}")
    left = [x for n in names for x in leftovers(n)]
    if quiet:
        return None
    lines = [f"closed lab {n}" for n in names] or ["no lab was open"]
    if closed_widgets:
        lines.append("closed " + ", ".join(closed_widgets))
    lines.append("nothing left behind" if not left else "LEFT BEHIND: " + ", ".join(left))
    lines += [f"error while closing {e}" for e in errors]
    cls = "pll-pass" if not left and not errors else "pll-fail"
    return HTML(f'<div class="{cls}">' + "<br>".join(esc(x) for x in lines) + "</div>",
                "; ".join(lines))


# --- views of results ---------------------------------------------------------------------------

class ReplayView(HTML):
    """The agreement table of a replay: per hook, what it saw and how it compares."""

    COLS = ("seen", "agree", "explained", "disagree", "lost", "skipped", "foreign")

    def __init__(self, summary, unavailable=None):
        self.doc = summary
        self.unavailable = dict(unavailable or {})
        super().__init__(self._body())

    def summary(self):
        return self.doc

    @property
    def ok(self):
        return all(t["disagree"] == 0 and t["lost"] == 0 for t in self.doc["hooks"].values())

    def plot(self, ax=None):
        from .plots import agreement
        return agreement(self.doc, ax=ax)

    def _body(self):
        d = self.doc
        rows = []
        for h in WIRE_ORDER:
            if h in d["hooks"]:
                t = d["hooks"][h]
                cells = [(f"<b>{esc(h)}</b>", ""), (esc(t.get("via") or ""), "")]
                for c in self.COLS:
                    v = t.get(c, 0)
                    klass = "pll-num"
                    if v and c in ("disagree", "lost"):
                        klass += " pll-diff"
                    elif v and c == "explained":
                        klass += " pll-expl"
                    cells.append((esc(v), klass))
                reasons = "; ".join(f"{n}× {r}" for r, n in t.get("explained_reasons", {}).items())
                cells.append((esc(reasons), ""))
                rows.append(cells)
            elif h in self.unavailable:
                rows.append([(f"<b>{esc(h)}</b>", ""), ("not attached", "")] +
                            [("", "")] * len(self.COLS) + [(esc(self.unavailable[h]), "pll-expl")])
        name = os.path.basename(str(d.get("source", "")))
        head = (f"<p><b>{esc(name)}</b>: {d['packets']} frames, {d.get('sent', d['packets'])} sent, "
                f"{d['elapsed_s']:.2f} s ({d['pps']:,.0f} frames/s); leftovers: "
                f"{esc(d['leftovers'] or 'none')}</p>")
        body = head + table(["hook", "via", *self.COLS, "explained because"], rows, raw=True)
        if d.get("disagreements"):
            body += "<p><b>disagreements</b> (first few):</p>" + table(
                ["frame", "hook", "fields"],
                [[x["frame"], x["hook"], ", ".join(x["fields"])] for x in d["disagreements"]])
        if d.get("problems"):
            body += "<p><b>capture problems</b>:</p><ul>" + "".join(
                f"<li>{esc(p)}</li>" for p in d["problems"]) + "</ul>"
        verdict = ("every hook agrees with the walker (or differs for a reason the kernel gives)"
                   if self.ok else "DISAGREEMENTS or LOST records: a bug in one of the parsers")
        body += f'<p class="{"pll-ok" if self.ok else "pll-no"}">{esc(verdict)}</p>'
        return body


class BatchView(HTML):
    """Frames of one batch: the walker's record and every hook's verdict, frame by frame."""

    def __init__(self, batch, hooks):
        from ..replay import compare
        self.batch = batch
        rows = []
        for i, f in enumerate(batch.frames):
            cells = [(esc(i + 1), "pll-num"), (esc(len(f)), "pll-num"),
                     (esc(_record_summary(batch.walked[i])), "pll-mono")]
            for h in hooks:
                r = batch.hooks[h]
                v = compare.VERDICT_NAMES[int(r.verdict[i])]
                note = ""
                if v == "disagree":
                    note = " " + esc(", ".join(r.diffs.get(i, [])))
                elif v == "explained" and int(r.reason[i]):
                    note = f' <span title="{esc(compare.REASONS[int(r.reason[i])])}">(why?)</span>'
                elif v == "skipped":
                    note = " " + esc(batch.skip_reasons.get(i, ""))
                kernel = (esc(_record_summary(r.matched[i])) if v in ("agree", "explained", "disagree")
                          and int(r.matched[i]["hook"]) else "")
                cells.append((badge(v) + " " + kernel + note, "pll-mono"))
            rows.append(cells)
        super().__init__(table(["#", "bytes", "walker", *hooks], rows, raw=True))


class Belt(HTML):
    """One packet at every hook: when each saw it (ts_ns) and what it saw."""

    FIELDS = ("frame_len", "ifindex", "vlan_depth", "flags", "eth_proto", "status", "layer",
              "ttl", "payload_off")

    def __init__(self, step, via):
        from ..replay import compare
        from ..packet import record as R
        self.step = step
        self.via = via
        self.times = {}
        self.records = {}
        for h in WIRE_ORDER:
            r = step.batch.hooks.get(h)
            if r is None or int(r.verdict[0]) > compare.DISAGREE:
                continue
            self.records[h] = r.matched[0]
            self.times[h] = int(r.matched[0]["ts_ns"])
        t0 = min(self.times.values()) if self.times else 0
        order = sorted(self.times, key=self.times.get)
        rows = []
        for h in order:
            rec = self.records[h]
            cells = [(f"<b>{esc(h)}</b>", ""), (esc(via.get(h, "")), ""),
                     (f"{(self.times[h] - t0) / 1000:.1f}", "pll-num"),
                     (badge(step.verdicts()[h]), "")]
            walked = step.batch.walked[0]
            for fld in self.FIELDS:
                v = int(rec[fld])
                text = (R.status_name(v) if fld == "status" else R.layer_name(v) if fld == "layer"
                        else "|".join(R.flag_names(v)) or "0" if fld == "flags"
                        else f"{v:#06x}" if fld == "eth_proto" else str(v))
                differs = fld not in ("ifindex",) and v != int(walked[fld])
                cells.append((esc(text), "pll-num pll-expl" if differs else "pll-num"))
            rows.append(cells)
        missing = [h for h in step.batch.hooks if h not in self.times]
        body = table(["hook", "via", "µs after the first", "verdict", *self.FIELDS], rows, raw=True)
        if missing:
            body += "<p class='pll-note'>no record at: " + ", ".join(
                f"{esc(h)} ({esc(step.verdicts()[h])})" for h in missing) + "</p>"
        body += ("<p class='pll-note'>shaded: differs from the walker's record of the bytes that "
                 "were sent (ifindex is each hook's own interface)</p>")
        super().__init__(body)

    def order(self):
        """Hooks in the order they saw the packet."""
        return sorted(self.times, key=self.times.get)

    def plot(self, ax=None):
        from .plots import conveyor_belt
        return conveyor_belt(self, ax=ax)


# --- 06, 07 ----------------------------------------------------------------------------------

CAPTURE_ENV = "PKTLAB_CAPTURE"


def instructor_capture(default="mixed.pcap"):
    """The capture lesson 07 replays: $PKTLAB_CAPTURE when the instructor set it, else
    ``default`` (a path, or a name in the capture directory)."""
    return capture_path(os.environ.get(CAPTURE_ENV) or default)


def bench_panel(**kwargs):
    """pktlab.bench.BenchPanel, with its Run button doing its work in_lab_thread(): clicked in
    JupyterLab, the handler runs in the kernel's main thread, where netlink cannot."""
    from ..bench.core import BenchPanel
    panel = BenchPanel(**kwargs)
    panel.button.on_click(panel._on_click, remove=True)
    panel.button.on_click(lambda b: in_lab_thread(panel._on_click, b))
    register_widget(_Closer(panel))
    return panel


class _Closer:
    """close_all() support for a panel that owns nothing between runs (the bench closes its
    lab at the end of every run): closing only disables its button."""

    def __init__(self, panel):
        self.panel = panel

    def close(self):
        self.panel.button.disabled = True


def run_bench(panel):
    """Run a BenchPanel's chosen subset (what its Run button does): the results dict, or the
    reason it cannot run here."""
    if os.geteuid() != 0:
        return NotHere("the bench", why_not("xdp") or "needs root")
    if not hook_available("xdp"):
        return NotHere("the bench", why_not("xdp"))
    return in_lab_thread(panel.run)


def bench_chart(results, ax=None):
    """The bench's chart (pktlab.bench.plot), or the reason there is none."""
    if not results:
        return results if isinstance(results, NotHere) else NotHere("bench chart", "no results")
    from ..bench.core import plot
    from .plots import show_figures_inline
    show_figures_inline()
    return plot(results, ax=ax)


def bench_text(results):
    """The bench's figures and what they mean, as text."""
    if not results:
        return results if isinstance(results, NotHere) else NotHere("bench text", "no results")
    from ..bench.core import format_text
    return Text(format_text(results))


class Text:
    """Plain text that shows as such in a notebook (no quotes, no escapes)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


# --- 03: a field XDP rewrote ---------------------------------------------------------------------

def xdp_rewrite_demo(frame, lab=None):
    """XDP that decrements the IPv4 TTL (as a router would) after recording the frame: what the
    XDP record says, and what TC ingress, running after it, sees. Its own small lab."""
    if not (hook_available("xdp") and hook_available("tc-ingress")):
        return NotHere("XDP rewrite demo", why_not("xdp") or why_not("tc-ingress"))
    from .exercises import ttl_rewrite_demo
    return in_lab_thread(ttl_rewrite_demo, frame)


def _main(argv):
    if len(argv) == 3 and argv[0] == "--reap":
        _reap(int(argv[1]), argv[2])
        return 0
    print("usage: python -m pktlab.lessons --reap PID LAB", file=sys.stderr)
    return 2

