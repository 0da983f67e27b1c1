"""The verifier, explained: a learner's C file compiled and loaded for a hook, and when the
kernel refuses it, why, at the learner's own source line.

    report = verifier.verify("mine.c", "tc-ingress")      # compile, load, judge; nothing attached
    report.ok, report.stage, report.exit_status           # "loaded" 0, "load" 1, "compile" 2
    report.errors    # [{"line", "message", "explanation", "kind", "fix", "source", ...}]
    report.log       # the verifier's (or the compiler's) whole log
    print(verifier.format_text(report))

A refusal is read from the verifier's log: its key lines (the error lines at the end), the
instruction it stopped at and the learner's line of that instruction (pktlab.kernel.progload
says how the lines survive bcc), then the first entry of REFUSALS that matches says in one plain
sentence what it means and what the usual fix is. Refusals that come from missing privileges
(a learner's program runs with CAP_BPF and CAP_NET_ADMIN only) are named as such. What no entry
matches still shows the key lines and the line. Compiler errors are shown the same way, with
COMPILER_HINTS.

The loader is a parameter: verify(..., loader=f) calls f(LoadRequest) -> Attempt and nothing
else. By default (as root) it is pktlab.kernel.loader's restricted worker: the learner's C is
compiled and loaded as an unprivileged account with CAP_BPF and CAP_NET_ADMIN only, so what
needs CAP_PERFMON is refused by the kernel and explained as such, and refusals of the loader's
own (a map type or size, a pinned table, a time or memory limit) are explained at the line
that declares the map (explain_refusal). judge() turns an Attempt someone else got into the
same Report (pktlab run loads through the loader itself, to keep the program).
"""

import dataclasses
import os
import re

from .. import resources
from ..errors import EnvironmentProblem
from .progload import LoadRequest

#: hook -> the program type its programs are loaded as (verify loads; it attaches nothing)
HOOK_TYPES = {
    "xdp": "XDP",
    "tc-ingress": "SCHED_CLS",
    "tc-egress": "SCHED_CLS",
    "cgroup-ingress": "CGROUP_SKB",
    "socket-filter": "SOCKET_FILTER",
    "sk-skb": "SK_SKB",
    "sock-ops": "SOCK_OPS",
}
#: refusals of pktlab's own learner loader (attempt.refusal), not the compiler's or kernel's
POLICY_KINDS = ("map type not allowed", "map too large", "pinned or shared map", "time limit",
                "memory limit")
#: a learner's file is a page or two of C, not a capture
MAX_SOURCE_BYTES = 1 << 20
#: helpers only CAP_PERFMON (or CAP_SYS_ADMIN) may call: they read kernel memory or print
PERFMON_HELPERS = (r"bpf_probe_read\w*|bpf_trace_printk|bpf_trace_vprintk|bpf_get_current_task"
                   r"\w*|bpf_snprintf\w*|bpf_per_cpu_ptr|bpf_this_cpu_ptr|bpf_task_pt_regs|"
                   r"bpf_copy_from_user\w*|bpf_get_current_comm|bpf_get_stack|bpf_get_stackid")
NO_PERFMON = "needs CAP_PERFMON (or CAP_SYS_ADMIN), which learner programs do not get"


@dataclasses.dataclass(frozen=True)
class Pattern:
    """One kind of refusal: what its key lines say (`said`, a regex whose named groups fill
    the sentences), what else the whole log must show (`needs`), where the mistake is (`at`:
    the instruction the verifier stopped at, or the one the message names as alloc_insn), what
    it means and the usual fix."""
    kind: str
    said: str
    meaning: str
    fix: str
    needs: str = None
    needs_in: str = "log"           # where `needs` is looked for: the log, the learner's C
                                    # ("source"), or the learner's line it stopped at ("line")
    privilege: bool = False         # met only by a loader without CAP_PERFMON
    at: str = "insn"


#: the verifier's refusals, most particular first; the first match explains
REFUSALS = (
    Pattern("reference leak on a path",
            r"Unreleased reference id=\d+ alloc_insn=(?P<alloc>\d+)|would lead to reference leak",
            "The socket taken at line {alloc_line} is released on some paths but still held on "
            "the one that returns at line {exit_line}: every reference must be given back on "
            "every path.",
            "Call bpf_sk_release(sk) on that path too, or release once, after the branches, "
            "before the single return.",
            needs=r"\bbpf_sk_release\s*\(", needs_in="source", at="alloc"),
    Pattern("reference leak",
            r"Unreleased reference id=\d+ alloc_insn=(?P<alloc>\d+)|would lead to reference leak",
            "The socket taken at line {alloc_line} is never given back: a lookup that finds a "
            "socket holds a reference on it, and the program returns (line {exit_line}) still "
            "holding it.",
            "After the NULL check and once you have read what you need, call bpf_sk_release(sk) "
            "before returning.", at="alloc"),
    Pattern("use after release", r"R(?P<reg>\d+) invalid mem access 'scalar'",
            "This reads through a socket pointer after bpf_sk_release(): once released it no "
            "longer points to a socket (the verifier now treats it as a plain number).",
            "Read what you need (sk->state, ...) into a local variable before the release, and "
            "release last.", needs=r"call bpf_sk_release#"),
    Pattern("released twice", r"R(?P<reg>\d+) type=scalar expected=sock",
            "This releases a socket that was already released: after the first "
            "bpf_sk_release() the pointer is no longer a socket.",
            "Release each socket exactly once, on each path: remove the second release.",
            needs=r"call bpf_sk_release#"),
    # without CAP_PERFMON the kernel marks a released socket's registers unreadable instead of
    # making them plain numbers: both mistakes then read "!read_ok", told apart by the line
    Pattern("released twice", r"R(?P<reg>[1-9]\d*) !read_ok",
            "This releases a socket that was already released: after the first "
            "bpf_sk_release() the pointer no longer holds anything the program may use.",
            "Release each socket exactly once, on each path: remove the second release.",
            needs=r"\bbpf_sk_release\s*\(", needs_in="line"),
    Pattern("use after release", r"R(?P<reg>[1-9]\d*) !read_ok",
            "This reads through a socket pointer after bpf_sk_release(): once released it no "
            "longer points to a socket (the verifier no longer lets the program read it).",
            "Read what you need (sk->state, ...) into a local variable before the release, and "
            "release last.", needs=r"call bpf_sk_release#"),
    Pattern("NULL not checked", r"R(?P<reg>\d+) invalid mem access '(?P<type>\w+)_or_null'",
            "This reads through a pointer that may be NULL ({type}_or_null: the lookup may find "
            "nothing), before any check that it is not.",
            "Check it right after the lookup, `if (!p) return ...;`, and use it only after "
            "that check."),
    Pattern("NULL not checked", r"R(?P<reg>\d+) type=(?P<type>\w+)_or_null expected=",
            "This passes a pointer that may be NULL ({type}_or_null: the lookup may find "
            "nothing) to a helper that needs a real one, e.g. bpf_sk_release(sk) with no sk.",
            "Check it first: return early when it is NULL (`if (!sk) return ...;`), then "
            "release it."),
    Pattern("packet out of bounds",
            r"invalid access to packet|offset is outside of the packet",
            "This reads packet bytes beyond what the program has checked against data_end: the "
            "verifier allows only bytes a comparison has proved to be there.",
            "Before reading a header, check that very header: "
            "`if ((void *)(h + 1) > data_end) return ...;` (each header, not only the first)."),
    Pattern("unbounded access",
            r"unbounded memory access|min value is negative|with unbounded min value|"
            r"makes \w+ pointer be out of bounds|invalid variable-offset|variable \w+ access|"
            r"max value is outside of the allowed memory range|invalid access to map value",
            "An offset the verifier cannot bound reaches into memory here: it must know the "
            "smallest and largest value a variable index can take.",
            "Bound the index with a check the verifier can see (`if (i >= N) return ...;` or "
            "`i &= N - 1`), and use an unsigned type."),
    Pattern("needs CAP_PERFMON",
            r"(?:unknown func|program of this type cannot use helper) "
            rf"(?P<helper>{PERFMON_HELPERS})#",
            "{helper} is a tracing helper (it reads kernel memory, or prints to the trace "
            "pipe): it " + NO_PERFMON + ".",
            "Read packet bytes directly (checked against data_end) or with bpf_skb_load_bytes(); "
            "to see a value, count it in a map rather than print it.", privilege=True),
    Pattern("needs CAP_PERFMON",
            r"has pointer with unsupported alu operation|has unknown scalar with mixed signed "
            r"bounds|tried to \w+ from different maps, paths or scalars|tried to \w+ beyond "
            r"pointer bounds",
            "This moves a pointer (into the packet, say) by an amount known only when the "
            "program runs, such as a header's length (ihl * 4). The verifier cannot check such "
            "a move against speculative execution, so it " + NO_PERFMON + "; moves by a "
            "constant are fine.",
            "Read at a variable offset with a helper that takes it as a number: "
            "bpf_xdp_load_bytes(ctx, off, &buf, len) at XDP, bpf_skb_load_bytes(skb, off, &buf, "
            "len) at TC; or move the pointer by constants only.", privilege=True),
    Pattern("needs CAP_PERFMON",
            r"pointer -= pointer prohibited|pointer comparison prohibited|leaks addr|"
            r"partial copy of pointer|pointer arithmetic with it prohibited",
            "Doing this with pointers could reveal a kernel address (subtracting or comparing "
            "pointers of different kinds, storing or returning a pointer): it " + NO_PERFMON
            + ".",
            "Work with lengths and checks instead of pointer differences: instead of "
            "`data_end - data` use skb->len (TC) or compare `data + N > data_end`; never store "
            "or return a pointer.", privilege=True),
    Pattern("pointer arithmetic",
            r"pointer arithmetic on \w+ prohibited|bitwise operator \S+ on pointer prohibited|"
            r"32-bit pointer arithmetic prohibited|dereference of modified \w+ ptr",
            "This pointer may not be moved or masked: only packet, stack and map-value pointers "
            "may be offset, and only by adding.",
            "Read the field you need from the context first (ctx->data, ...) and move that "
            "pointer, not the context pointer itself."),
    Pattern("helper not allowed here",
            r"(?:unknown func|program of this type cannot use helper|invalid func) "
            r"(?P<helper>[\w]+)#\d+",
            "{helper} is not a helper that {prog_type} programs may call: each program type "
            "has its own list.",
            "Use what this hook offers: an XDP program reads its bytes directly; "
            "bpf_skb_load_bytes() is for skb hooks (TC, socket filters); `man bpf-helpers` "
            "says which helper works where."),
    Pattern("program too large",
            r"BPF program is too large|jumps is too complex|too many states|complexity limit",
            "The verifier walks every path of the program, every loop iteration included, and "
            "gave up: it stops after a million instructions.",
            "Give loops a small constant bound (`for (i = 0; i < 16; i++)`), and stop as "
            "soon as you are done (`break`): a frame's headers need a few dozen turns at "
            "most."),
    Pattern("loop without an end",
            r"back-edge from insn|infinite loop detected|unbounded loop|loop is not bounded",
            "The verifier found a loop it cannot prove ends.",
            "Give every loop a constant upper bound the verifier can see "
            "(`for (i = 0; i < MAX && ...; i++)`)."),
    Pattern("needs CAP_PERFMON",
            r"invalid (?:indirect )?read from stack|uninitialized stack|"
            r"invalid indirect access to stack",
            "This reads stack memory that was never written (a variable or struct used, or "
            "passed to a helper, before it is set): that " + NO_PERFMON + ".",
            "Initialise it where you declare it: `struct bpf_sock_tuple t = {};`, "
            "`__u8 buf[16] = {};`.", privilege=True),
    Pattern("stack read before written",
            r"invalid (?:indirect )?read from stack|uninitialized stack|"
            r"invalid indirect access to stack",
            "This reads stack memory that was never written: a local variable or struct is "
            "used (or passed to a helper) before it is set.",
            "Initialise it where you declare it: `struct bpf_sock_tuple t = {};`, "
            "`__u8 buf[16] = {};`."),
    Pattern("stack too large",
            r"invalid (?:write to )?stack off=|combined stack size|stack depth \d+ exceeds",
            "The program needs more than the 512 bytes of stack a BPF program has.",
            "Keep big buffers in a per-CPU array map instead of local variables."),
    Pattern("context field not allowed",
            r"invalid bpf_context access|cannot write into (?:packet|ctx)",
            "A {prog_type} program may not read (or write) this field of its context, or not "
            "with this size.",
            "Use the fields this hook allows, with their declared size (struct __sk_buff, "
            "struct xdp_md in <linux/bpf.h>); change the packet only where the hook may."),
    Pattern("return value",
            r"At program exit the register R0 has|R0 !read_ok",
            "The program's return value is not one this hook accepts, or is never set.",
            "Return one of the hook's verdicts: XDP_PASS/XDP_DROP, TC_ACT_OK/TC_ACT_SHOT, 1 "
            "(pass) or 0 (drop) for cgroup-ingress."),
    Pattern("not a pointer", r"R(?P<reg>\d+) invalid mem access '(?P<type>\w+)'",
            "A value the verifier does not know as a pointer it may follow ({type}) is "
            "dereferenced here.",
            "Follow only pointers the verifier knows: the context's fields, packet pointers "
            "checked against data_end, a map value or a socket after its NULL check."),
    Pattern("a function as a callback", r"R(?P<reg>\d+) type=(?P<type>\w+) expected=func",
            "This helper takes a function to call back (bpf_loop, bpf_for_each_map_elem, "
            "bpf_timer_set_callback), and what it got is not one: bcc builds each function of "
            "your file as a program of its own, so the address it passes is a plain number "
            "({type}). Programs built with bcc, pktlab's and yours, cannot use callbacks.",
            "Write the loop yourself with a constant bound (`for (int i = 0; i < 64; i++)`): "
            "the verifier then checks every turn of it."),
    Pattern("wrong argument", r"R(?P<reg>\d+) type=(?P<type>\w+) expected=(?P<expected>.*)",
            "A helper gets an argument of the wrong kind ({type}), where it expects "
            "{expected}.",
            "Pass what the helper's signature asks for (`man bpf-helpers`)."),
)
GENERIC = Pattern(
    "refused", "",
    "The verifier refused the program here, for a reason pktlab has no plain sentence for yet: "
    "its own words are above.",
    "Read the full log (--log): it shows the path the verifier took and the state of each "
    "register at the line where it stopped.")

#: the compiler's errors, as the verifier's: (regex on the message, meaning, usual fix)
COMPILER_HINTS = (
    (r"use of undeclared identifier '(?P<name>\w+)'",
     "{name} is not declared here: a misspelt name, or the header that defines it is not "
     "included.",
     "Check the spelling; IPPROTO_TCP comes from <uapi/linux/in.h>, ETH_P_IP from "
     "<uapi/linux/if_ether.h>, TC_ACT_OK from <uapi/linux/pkt_cls.h>."),
    (r"implicit declaration of function '(?P<name>\w+)'",
     "{name} is not a function the compiler knows: a misspelt helper, or a missing header.",
     "Check the name against `man bpf-helpers`; pktlab's parser functions come from "
     "\"pktlab_parse.h\"."),
    (r"file not found",
     "The compiler cannot find this header: a learner's program sees only the kernel's headers "
     "and pktlab's (bpf_snippets), nothing else of the machine.",
     "Kernel headers are included as <uapi/linux/...>, pktlab's as \"pktlab_parse.h\"; put "
     "your own helpers in the program's file."),
    (r"cannot call non-static helper function",
     "bcc compiles every non-static function as a program of its own, and one program cannot "
     "call another.",
     "Make the function a helper: `static __always_inline int name(...)`."),
    (r"stack limit",
     "The program needs more than the 512 bytes of stack a BPF program has.",
     "Keep big buffers in a per-CPU array map instead of local variables."),
)
COMPILER_GENERIC = ("The C compiler refused this line; its message says what it expected.",
                    "Fix the line the compiler names, then verify again.")


@dataclasses.dataclass
class Report:
    """The verdict on a learner's program. to_dict() is `pktlab verify --json`."""
    ok: bool
    stage: str                      # "loaded", "load" (refused) or "compile"
    file: str
    hook: str
    prog_type: str
    function: str = None
    errors: list = dataclasses.field(default_factory=list)
    log: str = ""                   # the compiler's or the verifier's (accepted: its statistics)
    log_truncated: bool = False

    @property
    def exit_status(self):
        return 0 if self.ok else 1 if self.stage == "load" else 2

    def to_dict(self):
        return {"ok": self.ok, "errors": self.errors, "log": self.log, "stage": self.stage,
                "file": self.file, "hook": self.hook, "prog_type": self.prog_type,
                "function": self.function, "log_truncated": self.log_truncated}


def check_hook(hook):
    """A hook name verify knows -> its program type; else ValueError naming the choices."""
    try:
        return HOOK_TYPES[hook]
    except KeyError:
        raise ValueError(f"hook {hook!r}: choose one of {', '.join(HOOK_TYPES)}") from None


def read_source(path):
    """The learner's file as bytes; OSError/ValueError with a one-line reason."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file; name the C file to verify")
    if os.path.isdir(path):
        raise ValueError(f"{path}: a directory; name the C file to verify")
    size = os.path.getsize(path)
    if size > MAX_SOURCE_BYTES:
        raise ValueError(f"{path}: {size} bytes; a program to verify is C source of at most "
                         f"{MAX_SOURCE_BYTES} bytes")
    with open(path, "rb") as f:
        text = f.read()
    if b"\0" in text:
        raise ValueError(f"{path}: not a text file; name the C file to verify")
    return text


def verify(path, hook, func=None, loader=None):
    """Compile `path` (a learner's C, bcc dialect, uapi and pktlab headers in view), load its
    program as the hook's program type, and explain what the compiler or the verifier said.
    Bad input (file, hook, function) raises ValueError/OSError; no privileges to load,
    EnvironmentProblem."""
    prog_type = check_hook(hook)
    text = read_source(path)
    if loader is None:
        from .loader import default_loader
        loader = default_loader()
    name = os.path.basename(path)
    dirs = (os.path.dirname(os.path.abspath(path)), resources.snippets_dir())
    a = loader(LoadRequest(text, name, prog_type, func, dirs))
    return judge(a, path, hook, text, func)


def judge(a, path, hook, text, func=None):
    """The Report on an Attempt at the learner's file `path` (its bytes `text`): what verify()
    returns, for a caller that ran the loader itself (pktlab run keeps the program)."""
    prog_type = check_hook(hook)
    name = os.path.basename(path)
    lines = text.decode(errors="replace").split("\n")        # line N as the compiler counts
    report = Report(ok=a.stage == "loaded", stage=a.stage, file=path, hook=hook,
                    prog_type=prog_type, function=a.func)
    if a.stage == "choose":
        raise ValueError(_choice_problem(path, func, a))
    if a.refusal is not None:
        report.errors = [explain_refusal(a.refusal, lines)]
        report.log = a.refusal["message"]
    elif a.stage == "compile":
        report.errors = explain_compiler(a.compiler, lines)
        report.log = a.compiler.replace(MAIN_FILE + ":", path + ":")
    elif a.stage == "load":
        if not a.log.strip() and a.errno == 1:      # EPERM, and the verifier never ran
            raise EnvironmentProblem(
                f"load {name}:{a.func} as {prog_type}: the kernel refused this user (Operation "
                "not permitted); loading needs root, or CAP_BPF and CAP_NET_ADMIN")
        report.errors = explain_log(a.log, a.insn_lines, lines, prog_type, errno=a.errno,
                                    perfmon=a.perfmon)
        report.log, report.log_truncated = a.log, a.log_truncated
    else:
        report.log = a.log
    return report


def explain_refusal(refusal, source):
    """A refusal of pktlab's own (a map type or size, a pinned table, a time or memory limit:
    attempt.refusal) as an error at the learner's line."""
    line = refusal.get("line")
    return {"line": line, "message": refusal["message"],
            "explanation": f"{refusal['meaning']} Usual fix: {refusal['fix']}",
            "kind": refusal["kind"], "meaning": refusal["meaning"], "fix": refusal["fix"],
            "source": _source(source, line), "key_lines": [refusal["message"]]}


def _choice_problem(path, func, a):
    if func is not None:
        names = a.candidates or a.functions
        return (f"{path}: no program named {func!r}; its programs: {', '.join(names) or 'none'}"
                " (static functions are helpers, not programs)")
    if not a.functions:
        return (f"{path}: defines no program (a non-static function such as "
                "`int prog(struct __sk_buff *skb)`)")
    names = a.candidates or a.functions
    return (f"{path}: defines {len(names)} programs ({', '.join(names)}); choose one with "
            "--func NAME")


# the verifier's log -------------------------------------------------------------------------
_INSN = re.compile(r"^(\d+): \([0-9a-f]{2}\)")
_LINFO = re.compile(r"^; .* @ (\S+):(\d+)$")
#: lines of the log that are not the verifier's words about the refusal: instructions and
#: states, its source notes, the statistics, the precision back-tracking
_NOT_KEY = re.compile(r"^(\d+: |from \d+ to \d+|; |cur state:|old state:|processed \d+ insns|"
                      r"verification time|stack depth|Live regs|mark_precise|last_idx|regs=|"
                      r"parent |func#\d+ @|Validating |propagating |HINT: |"
                      r"bpf: Failed to load program|\s*$)")


def key_lines(log):
    """(the verifier's error lines, the instruction it stopped at or None, {instruction:
    line} from its own `; ... @ file:N` notes when it printed them)."""
    lines = log.splitlines()
    last, insn, noted, current = -1, None, {}, None
    for i, raw in enumerate(lines):
        m = _LINFO.match(raw)
        if m:
            if os.path.basename(m.group(1)) == "main.c":   # bcc's name for the learner's file
                current = int(m.group(2))
            continue
        m = _INSN.match(raw)
        if m:
            last, insn = i, int(m.group(1))
            if current is not None:
                noted[insn] = current
    keys = [raw.strip() for raw in lines[last + 1:] if not _NOT_KEY.match(raw)]
    return keys, insn, noted


def _fill(template, values):
    """{name} filled from values ("?" when missing); other braces (C's `= {}`) stay."""
    return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), "?")), template)


def explain_log(log, insn_lines, source, prog_type, errno=0, perfmon=True):
    """The verifier's log -> [{"line", "message", "explanation", ...}] (one refusal: the
    verifier stops at the first)."""
    keys, insn, noted = key_lines(log)
    if not keys:
        keys = [f"the kernel refused the program ({os.strerror(errno) if errno else 'no reason'}"
                f") and the verifier's log says nothing more"]
    said = "\n".join(keys)
    if insn is None:
        m = re.search(r"\binsn (\d+)", said)
        insn = int(m.group(1)) if m else None
    where = {**noted, **insn_lines}

    def line_of(i):
        if i is None:
            return None
        earlier = [k for k in where if k <= i]
        return where[max(earlier)] if earlier else None

    code = _without_comments("\n".join(source))
    stopped_at = _without_comments(_source(source, line_of(insn)) or "")
    pattern, values = GENERIC, {}
    for p in REFUSALS:
        found = re.search(p.said, said)
        if not found or (p.privilege and perfmon):
            continue
        hay = {"log": log, "source": code, "line": stopped_at}[p.needs_in]
        if p.needs is None or re.search(p.needs, hay):
            pattern = p
            values = {k: v for k, v in found.groupdict().items() if v is not None}
            break
    stop_line = line_of(insn)
    alloc = re.search(r"alloc_insn=(\d+)", said)
    alloc_line = line_of(int(alloc.group(1))) if alloc else None
    values.update(prog_type=prog_type, alloc_line=alloc_line or "?", exit_line=stop_line or "?")
    line = alloc_line if pattern.at == "alloc" and alloc_line else stop_line
    meaning, fix = _fill(pattern.meaning, values), _fill(pattern.fix, values)
    error = {"line": line, "message": "; ".join(keys), "explanation": f"{meaning} Usual fix: "
             f"{fix}", "kind": pattern.kind, "meaning": meaning, "fix": fix,
             "source": _source(source, line), "insn": insn, "key_lines": keys}
    if pattern.at == "alloc" and line != stop_line and stop_line is not None:
        error["also"] = [{"line": stop_line, "source": _source(source, stop_line),
                          "note": "the path the verifier followed returns here, still "
                                  "holding it"}]
    return [error]


def _without_comments(c):
    return re.sub(r"/\*.*?\*/|//[^\n]*", " ", c, flags=re.S)


def _source(lines, n):
    return lines[n - 1].strip() if n and 0 < n <= len(lines) else None


# the compiler's errors ----------------------------------------------------------------------
_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?P<col>\d+): "
                   r"(?P<sev>error|fatal error): (?P<msg>.*)$")
_INCLUDED = re.compile(r"^In file included from (?P<file>[^:\n]+):(?P<line>\d+):")
_BARE = re.compile(r"^(?:error|fatal error): (?P<msg>.*)$|^.*error: (?P<msg2><unknown>.*)$")
MAIN_FILE = "/virtual/main.c"             # bcc's name for the text it compiles


def explain_compiler(text, source):
    """The compiler's output -> [{"line", "message", "explanation", ...}], lines the learner's.
    An error inside an included header is placed at the learner's #include line."""
    errors, include = [], None
    for raw in text.splitlines():
        m = _INCLUDED.match(raw)
        if m:
            if m.group("file") == MAIN_FILE:
                include = int(m.group("line"))
            continue
        m = _DIAG.match(raw)
        b = None if m else _BARE.match(raw)
        if not m and not b:
            continue
        column = None
        if m and m.group("file") == MAIN_FILE:
            line, msg, column = int(m.group("line")), m.group("msg"), int(m.group("col"))
        elif m:
            line = include
            msg = f"in {os.path.basename(m.group('file'))}:{m.group('line')}: {m.group('msg')}"
        else:
            line, msg = None, b.group("msg") or b.group("msg2")
        include = None
        meaning, fix = COMPILER_GENERIC
        for said, mean, usual in COMPILER_HINTS:
            h = re.search(said, msg)
            if h:
                meaning, fix = _fill(mean, h.groupdict()), _fill(usual, h.groupdict())
                break
        errors.append({"line": line, "message": msg, "explanation": f"{meaning} Usual fix: "
                       f"{fix}", "kind": "compile error", "meaning": meaning, "fix": fix,
                       "source": _source(source, line), "column": column})
    if not errors:
        tail = [t for t in text.strip().splitlines() if t.strip()][-3:]
        errors.append({"line": None, "message": " / ".join(tail) or "bcc could not compile it",
                       "explanation": "bcc could not build the program, and said no more than "
                                      "this.", "kind": "compile error", "source": None})
    return errors


# text ---------------------------------------------------------------------------------------
def format_text(report, show_log=False):
    """The verdict first, then each error at the learner's line, then where the log is."""
    name = os.path.basename(report.file)
    what = f"{report.function or 'program'} as {report.prog_type} (hook {report.hook})"
    if report.ok:
        n = re.search(r"processed (\d+) insns", report.log)
        out = [f"{name}: LOADED: the verifier accepted {what}"
               + (f" after {n.group(1)} instructions" if n else "")]
        return "\n".join(out)
    policy = any(e.get("kind") in POLICY_KINDS for e in report.errors)
    if policy:
        out = [f"{name}: REFUSED by pktlab's learner loader: {what}"]
        source = "pktlab"
    elif report.stage == "compile":
        out = [f"{name}: DOES NOT COMPILE ({len(report.errors)} error"
               f"{'s' if len(report.errors) != 1 else ''})"]
        source = "compiler"
    else:
        out = [f"{name}: REFUSED by the verifier: {what}"]
        source = "verifier"
    for e in report.errors:
        out.append("")
        out.append(f"  {name}:{e['line']}: {e['source']}" if e.get("line")
                   else f"  {name}: (no line)")
        for k in e.get("key_lines") or [e["message"]]:
            out.append(f"      {source}: {k}")
        for a in e.get("also", []):
            out.append(f"  {name}:{a['line']}: {a['source']}    <- {a['note']}")
        if e.get("meaning"):
            out.append(f"  {e['kind']}: {e['meaning']}")
            out.append(f"  usual fix: {e['fix']}")
        else:
            out.append(f"  {e['explanation']}")
    out.append("")
    if policy:
        return "\n".join(out[:-1])
    n = len(report.log.splitlines())
    if show_log:
        out.append(f"the full {source} log ({n} lines"
                   + (", only its end: the kernel kept the last part" if report.log_truncated
                      else "") + "):")
        out.append(report.log.rstrip())
    else:
        out.append(f"the full {source} log ({n} lines"
                   + (", its end only" if report.log_truncated else "")
                   + "): add --log, or see \"log\" in --json")
    return "\n".join(out)
