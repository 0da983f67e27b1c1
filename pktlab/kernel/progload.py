"""Compile a learner's C file with bcc and load one of its programs: the attempt, as data.

    attempt = progload.attempt(LoadRequest(text, "mine.c", "SCHED_CLS"))
    attempt.stage        # "compile" (refused by the compiler), "choose" (no single program),
                         # "load" (refused by the kernel) or "loaded"
    attempt.to_dict()    # plain data: a loader in another process hands back the same thing

`attempt()` is the one way in: pktlab.kernel.verifier calls whatever loader it is given with a
LoadRequest and reads only the Attempt that comes back, so a restricted loader (a worker with
CAP_BPF and CAP_NET_ADMIN only) can take this one's place without the explainer changing.

How the learner's line numbers survive bcc (bcc 0.26):
- bcc compiles text as /virtual/main.c after rewriting it (10 lines of its own on top, a section
  attribute before every program, ...), so the compiler's lines are not the learner's. Every
  line of the learner's file is given to bcc behind a `#line N` directive: the rewriter keeps
  them, and the compiler's diagnostics, the DWARF and BTF line tables all carry the learner's
  line N (the file name stays /virtual/main.c, which is what bcc's source dump keys on).
- bcc's own load drops the BTF line info when the kernel answers EINVAL (it retries without
  it, for old kernels: every verifier refusal is an EINVAL) and keeps no log for E2BIG (a
  program too large). So the program is loaded here with one BPF_PROG_LOAD of its own, and each
  instruction's line comes from bcc's source dump (DEBUG_SOURCE: "; ... // Line N" before the
  instructions of line N).
Nothing is attached: the program is loaded, judged and closed.
"""

import ctypes
import dataclasses
import errno as _errno
import os
import platform
import re
import tempfile

from . import mappolicy
from .bpf import bcc

#: bcc's program type names -> the kernel's enum bpf_prog_type
PROG_TYPE_IDS = {"SOCKET_FILTER": 1, "SCHED_CLS": 3, "XDP": 6, "CGROUP_SKB": 8, "SOCK_OPS": 13,
                 "SK_SKB": 14}
DEBUG_SOURCE = 0x8           # bcc: dump each function's instructions under its source lines
BPF_PROG_LOAD = 5
BPF_LOG_LEVEL1, BPF_LOG_STATS = 1, 4
NR_BPF = {"x86_64": 321, "AMD64": 321, "aarch64": 280, "arm64": 280}
#: the verifier's log: first this many bytes; a longer log is fetched whole up to LOG_MAX, else
#: its tail is kept (the kernel keeps the end, where the refusal is)
LOG_FIRST, LOG_MAX = 1 << 20, 16 << 20
#: a function whose first parameter is a pointer: a program's context (struct __sk_buff *skb)
_CTX_PARAM = r"\b{name}\s*\(\s*(?:const\s+)?(?:struct\s+\w+|void|\w+_t)\s*\*"


@dataclasses.dataclass
class LoadRequest:
    """What to compile and load: the learner's file as written, never rewritten by the caller."""
    text: bytes
    name: str                       # the file's name, for messages
    prog_type: str                  # a PROG_TYPE_IDS key
    func: str = None                # the program to load; None: the only one the file defines
    include_dirs: tuple = ()
    defines: tuple = ()             # pktlab's own -D flags ("NAME=VALUE"), never a learner's


@dataclasses.dataclass
class Attempt:
    """What a loader did with a LoadRequest. Plain data only (it may cross a process)."""
    stage: str                      # "compile", "choose", "load" or "loaded"
    compiler: str = ""              # the compiler's own words (diagnostics), when it refused
    functions: list = dataclasses.field(default_factory=list)   # programs the file defines
    candidates: list = dataclasses.field(default_factory=list)  # ... that take a context
    func: str = None                # the program loaded
    insn_lines: dict = dataclasses.field(default_factory=dict)  # instruction -> learner line
    errno: int = 0                  # the kernel's answer to the load
    log: str = ""                   # the verifier's log
    log_truncated: bool = False     # only the log's tail is here
    perfmon: bool = True            # the loader had CAP_PERFMON (or CAP_SYS_ADMIN): then no
                                    # refusal is about privileges
    refusal: dict = None            # refused by pktlab's policy, not the kernel (a map type,
                                    # a map's size, a pinned table, a time or memory limit):
                                    # {"kind", "message", "meaning", "fix", "line", ...}

    def to_dict(self):
        d = dataclasses.asdict(self)
        d["insn_lines"] = {str(k): v for k, v in self.insn_lines.items()}
        return d

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d["insn_lines"] = {int(k): v for k, v in d.get("insn_lines", {}).items()}
        return cls(**d)


def with_line_directives(text):
    """The learner's bytes with `#line N` before each line: whatever bcc inserts, line N stays
    line N. Not inside a backslash-continued line (a macro or string going on)."""
    out, continued = [], False
    for n, line in enumerate(text.split(b"\n"), 1):
        if not continued:
            out.append(b"#line %d" % n)
        out.append(line)
        continued = line.rstrip(b"\r").endswith(b"\\")
    return b"\n".join(out)


_DEFINE = re.compile(r"^[A-Za-z_]\w*(=[\w.+-]*)?$")


def check_define(d):
    """A -D flag's text: NAME or NAME=VALUE of plain characters (no option can hide in it)."""
    if not _DEFINE.match(d):
        raise ValueError(f"define {d!r}: a NAME or NAME=VALUE of letters, digits and _.+-")
    return d


def attempt(req, keep=None, on_load=None):
    """Compile req.text with bcc, choose the program, load it once; an Attempt, never raises
    for what the learner wrote (the compiler's and the kernel's refusals are data).

    The learner's maps are checked against pktlab.kernel.mappolicy before the program is
    loaded. keep(prog_fd, tables), when given, is called once the program is loaded, while its
    fds are open (it dups what it keeps: everything is closed when attempt returns); tables
    are module_tables()'s. on_load() is called just before the kernel is asked to load."""
    refused = mappolicy.check_source(req.text.decode(errors="replace"))
    if refused is not None:
        return Attempt("load", errno=_errno.EPERM, refusal=refused, perfmon=False)
    lib = bcc().libbcc.lib
    flags = [b"-I" + os.fsencode(d) for d in req.include_dirs]
    flags += [b"-D" + check_define(d).encode() for d in req.defines]
    cflags = (ctypes.c_char_p * len(flags))(*flags)
    with _capture_output() as out:
        module = lib.bpf_module_create_c_from_string(with_line_directives(req.text), DEBUG_SOURCE,
                                                     cflags, len(flags), True, None)
    if not module:
        return Attempt("compile", compiler=out["text"])
    try:
        functions = [lib.bpf_function_name(module, i).decode()
                     for i in range(lib.bpf_num_functions(module))]
        text = req.text.decode(errors="replace")
        candidates = [f for f in functions
                      if re.search(_CTX_PARAM.format(name=re.escape(f)), text)]
        func = choose(req.func, functions, candidates)
        if func is None:
            return Attempt("choose", functions=functions, candidates=candidates)
        lines = source_dump_lines(out["text"]).get(func, {})
        tables = module_tables(lib, module)
        refused = check_tables(tables, text)
        if refused is not None:
            return Attempt("load", functions=functions, candidates=candidates, func=func,
                           errno=_errno.EPERM, refusal=refused, perfmon=has_caps(PERFMON_CAPS))
        insns = ctypes.string_at(lib.bpf_function_start(module, func.encode()),
                                 lib.bpf_function_size(module, func.encode()))
        license_ = lib.bpf_module_license(module) or b"GPL"
        if on_load is not None:
            on_load()
        fd, err, log, cut = prog_load(PROG_TYPE_IDS[req.prog_type], func, insns, license_,
                                      lib.bpf_module_kern_version(module))
        if fd >= 0:
            try:
                if keep is not None:
                    keep(fd, tables)
            finally:
                os.close(fd)
        return Attempt("loaded" if fd >= 0 else "load", functions=functions,
                       candidates=candidates, func=func, insn_lines=lines, errno=err, log=log,
                       log_truncated=cut, perfmon=has_caps(PERFMON_CAPS))
    finally:
        lib.bpf_module_destroy(module)


def module_tables(lib, module):
    """The maps bcc made for a compiled module: [{"name", "fd", "map_type", "key_size",
    "value_size", "max_entries", "flags", "key_desc", "leaf_desc"}] (the descs are bcc's JSON
    descriptions of the key and value types, which pktlab.kernel.mapdump reads)."""
    _table_argtypes(lib)
    out = []
    for i in range(lib.bpf_num_tables(module)):
        name = lib.bpf_table_name(module, i)
        out.append({"name": name.decode(), "fd": lib.bpf_table_fd_id(module, i),
                    "map_type": lib.bpf_table_type_id(module, i),
                    "key_size": lib.bpf_table_key_size_id(module, i),
                    "value_size": lib.bpf_table_leaf_size_id(module, i),
                    "max_entries": lib.bpf_table_max_entries_id(module, i),
                    "flags": lib.bpf_table_flags_id(module, i),
                    "key_desc": (lib.bpf_table_key_desc_id(module, i) or b"").decode(),
                    "leaf_desc": (lib.bpf_table_leaf_desc_id(module, i) or b"").decode()})
    return out


def _table_argtypes(lib):
    c = ctypes
    for fn, res in (("bpf_num_tables", c.c_size_t), ("bpf_table_name", c.c_char_p),
                    ("bpf_table_fd_id", c.c_int), ("bpf_table_key_size_id", c.c_size_t),
                    ("bpf_table_leaf_size_id", c.c_size_t),
                    ("bpf_table_key_desc_id", c.c_char_p),
                    ("bpf_table_leaf_desc_id", c.c_char_p)):
        f = getattr(lib, fn)
        f.restype = res
        f.argtypes = [c.c_void_p] if fn == "bpf_num_tables" else [c.c_void_p, c.c_size_t]


def check_tables(tables, text):
    """The learner's maps against pktlab.kernel.mappolicy: the first refusal (with the line
    that declares the map), else None."""
    from .bpf import possible_cpus
    used = 0
    for t in tables:
        refused = mappolicy.check_map(t["name"], t["map_type"], t["key_size"], t["value_size"],
                                      t["max_entries"], possible_cpus(), used)
        if refused is not None:
            refused["line"] = mappolicy.declaration_line(text, t["name"])
            refused["at"] = "declaration"
            return refused
        used += mappolicy.map_bytes(mappolicy.type_name(t["map_type"]), t["key_size"],
                                    t["value_size"], t["max_entries"], possible_cpus())
    return None


CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
#: any one of these sets lets a process load programs / read kernel memory from them
LOAD_CAPS = ((CAP_SYS_ADMIN,), (CAP_BPF, CAP_NET_ADMIN))
PERFMON_CAPS = ((CAP_SYS_ADMIN,), (CAP_PERFMON,))


def has_caps(alternatives):
    """Does this process hold all the capabilities of one of the alternatives (effective)?
    (capget: the learner loader's worker has no /proc)"""
    from .sandbox import capabilities
    try:
        eff = capabilities()[0]
    except OSError:
        return os.geteuid() == 0
    return any(all(eff >> c & 1 for c in caps) for caps in alternatives)


def choose(wanted, functions, candidates):
    """The program to load: the one asked for, else the only one (with a context argument, if
    the file also defines other functions); None when that is not one function."""
    if wanted is not None:
        return wanted if wanted in functions else None
    if len(candidates) == 1:
        return candidates[0]
    if not candidates and len(functions) == 1:
        return functions[0]
    return None


_DUMP_FUNC = re.compile(r"^Disassembly of function (\S+)$")
_DUMP_LINE = re.compile(r"^; .* // Line\s*(\d+)$")
_DUMP_INSN = re.compile(r"^\s*(\d+):\t")


def source_dump_lines(text):
    """bcc's DEBUG_SOURCE dump -> {function: {instruction index: learner line}}. A line is
    announced before its first instruction and holds until the next one."""
    out, cur, line = {}, None, None
    for raw in text.splitlines():
        m = _DUMP_FUNC.match(raw)
        if m:
            cur, line = out.setdefault(m.group(1), {}), None
            continue
        if cur is None:
            continue
        m = _DUMP_LINE.match(raw)
        if m:
            line = int(m.group(1))
            continue
        m = _DUMP_INSN.match(raw)
        if m and line is not None:
            cur[int(m.group(1))] = line
    return out


class _ProgLoadAttr(ctypes.Structure):
    """union bpf_attr as BPF_PROG_LOAD reads it, up to log_true_size (kernel 6.4+)."""
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("core_relo_cnt", ctypes.c_uint32),
                ("fd_array", ctypes.c_uint64), ("core_relos", ctypes.c_uint64),
                ("core_relo_rec_size", ctypes.c_uint32), ("log_true_size", ctypes.c_uint32)]


_syscall = None


def _bpf_prog_load(prog_type, name, insns, license_, kern_version, level, size):
    """One BPF_PROG_LOAD: (fd or -1, errno, log text, bytes the whole log needs)."""
    global _syscall
    if _syscall is None:
        libc = ctypes.CDLL(None, use_errno=True)
        _syscall = libc.syscall
        _syscall.restype = ctypes.c_long
        _syscall.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong]
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license_)
    buf = ctypes.create_string_buffer(size) if level else None
    attr = _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8,
                         insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                         kern_version=kern_version, log_level=level,
                         log_size=size if level else 0,
                         log_buf=ctypes.addressof(buf) if level else 0,
                         prog_name=name.encode()[:15])
    fd = _syscall(NR_BPF[platform.machine()], BPF_PROG_LOAD, ctypes.byref(attr),
                  ctypes.sizeof(attr))
    err = ctypes.get_errno() if fd < 0 else 0
    log = buf.value.decode(errors="replace") if level else ""
    return fd, err, log, attr.log_true_size


def prog_load(prog_type, name, insns, license_, kern_version):
    """Load once without the instruction trace (the verdict, and the verifier's statistics);
    when refused, again with it (the log the explainer reads). Returns (fd or -1, errno, log,
    log truncated)."""
    fd, err, stats, _ = _bpf_prog_load(prog_type, name, insns, license_, kern_version,
                                       BPF_LOG_STATS, 64 << 10)
    if fd < 0 and err == _errno.ENOSPC:      # the statistics did not fit: ask without them
        fd, err, stats, _ = _bpf_prog_load(prog_type, name, insns, license_, kern_version, 0, 0)
    if fd >= 0:
        return fd, 0, stats, False
    size = LOG_FIRST
    while True:
        fd2, err2, log, need = _bpf_prog_load(prog_type, name, insns, license_, kern_version,
                                              BPF_LOG_LEVEL1, size)
        if fd2 >= 0:                          # refused a moment ago, taken now: not kept
            os.close(fd2)
        if err2 != _errno.ENOSPC or need <= size or need > LOG_MAX:
            return -1, err, log, err2 == _errno.ENOSPC and need > size
        size = need + 4096


class _capture_output:
    """bcc talks on fd 2 (the compiler, the source dump) and now and then on fd 1 (through the
    C library's buffer): both into one text, so that --json's stdout stays one document."""

    def __enter__(self):
        import sys
        for f in (sys.stdout, sys.stderr):
            try:
                f.flush()
            except (AttributeError, ValueError, OSError):
                pass
        self.box = {"text": ""}
        self.tmp = tempfile.TemporaryFile(mode="w+b")
        self.saved = []
        for fd in (1, 2):
            try:
                self.saved.append(os.dup(fd))
            except OSError:                  # started with it closed: closed again after
                self.saved.append(None)
            os.dup2(self.tmp.fileno(), fd)
        return self.box

    def __exit__(self, *exc):
        ctypes.CDLL(None).fflush(None)
        for fd, saved in zip((1, 2), self.saved):
            if saved is None:
                os.close(fd)
                continue
            os.dup2(saved, fd)
            os.close(saved)
        self.tmp.seek(0)
        self.box["text"] = self.tmp.read().decode(errors="replace")
        self.tmp.close()
        return False
