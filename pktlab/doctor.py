"""`pktlab doctor`: what works on this machine, proven, with a fix for each failure.

Every hook is proven the only way that counts: its real program is compiled, loaded and
attached in a throwaway lab, a frame is sent across the veth, and its record must come back.
"""

import ctypes
import errno
import os
import platform
import shutil
import time

from .errors import PktlabError

PACKET_HOOKS = ("xdp", "tc-ingress", "tc-egress", "kprobe")
SOCKET_HOOKS = ("cgroup-ingress", "socket-filter", "sk-skb", "recv")
CONNECTION_HOOKS = ("sock-ops",)
HOOK_NAMES = PACKET_HOOKS + SOCKET_HOOKS + CONNECTION_HOOKS
MPTCP_SYSCTL = "/proc/sys/net/mptcp/enabled"


class Check:
    def __init__(self, name, ok, detail, fix=""):
        self.name, self.ok, self.detail, self.fix = name, bool(ok), detail, fix if not ok else ""

    def to_dict(self):
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "fix": self.fix}


#: what works without root, and what does not (the doctor tells a normal user both)
WITHOUT_ROOT = ("`pktlab cast PCAP` (the userspace walk of every frame)",
                "lesson 01 (notebooks/01-casting-headers.ipynb, casting headers in Python)")
NEEDS_ROOT = ("pktlab replay", "pktlab bench", "pktlab lab up|down|clean", "pktlab mptcp",
              "lessons 02-10 (hooks in a live lab)")
SUDO_FIX = "run it as root: `sudo .venv/bin/pktlab doctor` (or `make lab` as root)"


def _is_root():
    return os.geteuid() == 0


def _check_root():
    if _is_root():
        return Check("privileges", True, "running as root")
    return Check("privileges", False, f"running as uid {os.geteuid()}, not root; eBPF programs "
                 "and network namespaces need root (CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN), "
                 "the userspace walk does not (see walker)", SUDO_FIX)


def _check_bpf_syscall():
    """Create (and close) a one-entry array map with the raw bpf(2) syscall."""
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 32)()
    attr[0], attr[1], attr[2], attr[3] = 2, 4, 4, 1   # BPF_MAP_TYPE_ARRAY, key 4, value 4, 1
    nr = {"x86_64": 321, "aarch64": 280}.get(platform.machine(), 321)
    fd = libc.syscall(nr, 0, ctypes.byref(attr), ctypes.sizeof(attr))   # BPF_MAP_CREATE
    if fd < 0:
        err = ctypes.get_errno()
        if not _is_root() and err == errno.EPERM:
            return Check("bpf syscall", False, f"bpf(BPF_MAP_CREATE): {os.strerror(err)} for uid "
                         f"{os.geteuid()}: needs root (see privileges)", SUDO_FIX)
        return Check("bpf syscall", False, f"bpf(BPF_MAP_CREATE) failed: {os.strerror(err)}",
                     "run as root; if root already, the kernel needs CONFIG_BPF_SYSCALL=y "
                     "(kernel.unprivileged_bpf_disabled does not affect root)")
    os.close(fd)
    return Check("bpf syscall", True, "bpf(2) creates maps")


def _check_btf():
    from .kernel import btf
    try:
        offs = btf.skb_offsets()
    except PktlabError as e:
        return Check("btf", False, str(e), "use a kernel built with CONFIG_DEBUG_INFO_BTF=y "
                     "(every major distribution kernel is)")
    return Check("btf", True, f"{btf.VMLINUX}: sk_buff.head@{offs['PL_OFF_SKB_HEAD']} "
                 f"data@{offs['PL_OFF_SKB_DATA']} len@{offs['PL_OFF_SKB_LEN']} "
                 f"mac_header@{offs['PL_OFF_SKB_MAC_HEADER']} dev@{offs['PL_OFF_SKB_DEV']}")


def _check_bcc():
    from .kernel import bpf
    try:
        mod = bpf.bcc()
    except PktlabError as e:
        return Check("bcc", False, str(e), "run scripts/setup.sh (installs python3-bpfcc and "
                     "a venv with --system-site-packages)"), None
    version = getattr(mod, "__version__", "unknown version")
    return Check("bcc", True, f"bcc {version} from {os.path.dirname(mod.__file__)}"), mod


def _check_compile():
    from .kernel import bpf
    t = time.perf_counter()
    try:
        prog = bpf.load("xdp")
    except PktlabError as e:
        log = getattr(e, "log", "")
        tail = log.strip().splitlines()[-3:] if log else []
        return Check("bcc compile", False, f"{e} {' | '.join(tail)}",
                     "kernel headers are missing or broken: run scripts/setup.sh (it installs "
                     "them, or the Debian fallback)")
    bpf.release(prog)
    return Check("bcc compile", True, f"xdp.bpf.c compiled and verified in "
                 f"{time.perf_counter() - t:.2f}s")


def headers_source():
    """Where bcc's kernel headers come from, in words."""
    kver = platform.release()
    build = f"/lib/modules/{kver}/build"
    if os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return True, "the kernel's own /sys/kernel/kheaders.tar.xz"
    if os.path.exists(os.path.join(build, "Makefile")):
        target = os.path.realpath(build)
        if kver in os.path.basename(target) or kver in target:
            return True, f"headers for the running kernel ({target})"
        return True, (f"fallback: {build} -> {target} (no headers exist for {kver}; "
                      "scripts/setup.sh linked the newest Debian linux-headers tree)")
    return False, f"no {build} and no /sys/kernel/kheaders.tar.xz"


def _check_headers():
    ok, detail = headers_source()
    return Check("kernel headers", ok, detail, "run scripts/setup.sh (installs linux-headers for "
                 "this kernel, or links the Debian fallback when none exist)")


def _mounts(fstype):
    """Mount points of a file system type, from /proc/self/mounts (every user may read it)."""
    try:
        with open("/proc/self/mounts") as f:
            return [p[1] for p in (ln.split() for ln in f) if len(p) > 2 and p[2] == fstype]
    except OSError:
        return []


def _check_tracefs():
    for p in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if os.path.isdir(os.path.join(p, "events")):
            return Check("tracefs", True, f"mounted at {p}")
    mounted = _mounts("tracefs")
    if mounted:
        # mounted, but not for us to read: the kernel keeps tracefs for root (mode 0700); that
        # is the privileges check's business, not a missing mount
        return Check("tracefs", True, f"mounted at {mounted[0]}, readable by root only (you "
                     f"are uid {os.geteuid()}); its tracepoints are used when pktlab runs as root")
    return Check("tracefs", False, "tracefs is not mounted (tracepoints are found there)",
                 "mount -t tracefs tracefs /sys/kernel/tracing (scripts/setup.sh does it)")


def _check_walker():
    """The userspace walk needs no privilege: prove it on a frame, as `pktlab cast` would."""
    frame = bytes.fromhex("020000000002020000000001080045000020000100004011000"
                          "00ac800010ac80002303930390008000000000000")
    try:
        from .packet import walk
        w = walk(frame)
    except Exception as e:          # a doctor reports what is broken, it does not crash on it
        return Check("walker", False, f"the userspace walk failed: {e}",
                     "`pktlab cast` and lesson 01 need it: reinstall pktlab (scripts/setup.sh)")
    return Check("walker", True, f"the userspace walk parsed a test frame ({w.summary()}); "
                 "`pktlab cast` and lesson 01 work for every user")


def cgroup2_mount():
    """The cgroup v2 mount point, from /proc/self/mountinfo (it is not always /sys/fs/cgroup)."""
    from .lab.cgroup import cgroup2_mount as mount
    return mount()


def _check_cgroup2():
    from .lab.cgroup import MOUNTINFO, mount_fix
    m = cgroup2_mount()
    if m:
        return Check("cgroup v2", True, f"mounted at {m} (from {MOUNTINFO})")
    return Check("cgroup v2", False, f"no cgroup2 mount in {MOUNTINFO}: the socket-end hooks "
                 "(cgroup-ingress, sk-skb) and lesson 08 attach to a cgroup v2 of the lab's own",
                 mount_fix())


def _check_cgroup_v1_net():
    """cgroup v1 net_cls / net_prio: once used, cgroup v2 socket matching is off for good."""
    from .lab.cgroup import v1_net_controllers
    found = v1_net_controllers()
    if not found:
        return Check("cgroup v1 net", True, "no cgroup v1 net_cls/net_prio hierarchy: sockets "
                     "are matched to their cgroup v2")
    where = ", ".join(f"{c} at {p}" for p, c in found)
    return Check("cgroup v1 net", False, f"{where}: once a process uses it, the kernel stops "
                 "matching sockets to cgroup v2 (dmesg: 'disabling cgroup2 socket matching'); "
                 "cgroup-ingress and sk-skb then see nothing (the hook probe below says whether "
                 "it happened)", "unmount the net_cls/net_prio hierarchies, and reboot if "
                 "cgroup2 socket matching was already disabled")


def _check_tool(name, why, fix, required=False):
    path = shutil.which(name)
    c = Check(name, bool(path), path or f"not found ({why})", fix)
    c.required = required
    return c


def _own_lab():
    from .lab import Lab
    return Lab(prefix="pldoc")


def _probe_hooks(checks_ok, new_lab=_own_lab):
    """Attach every hook in a throwaway lab and send one frame: {hook: {available, via, why}}."""
    from .kernel.hooks import HookSet, choose_kprobe_mechanism
    from .lab.inject import Injector
    out = {h: {"available": False, "via": None, "why": ""} for h in PACKET_HOOKS}
    if not checks_ok:
        why = ("not tried: needs root (see privileges)" if not _is_root() else
               "not tried: bcc or its compile failed (see checks)")
        for h in HOOK_NAMES:
            out.setdefault(h, {"available": False, "via": None})["why"] = why
        return out
    frame = (b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00"
             b"\x45\x00\x00\x1c\x00\x01\x00\x00\x40\x11\x00\x00\x0a\xc8\x00\x01\x0a\xc8\x00\x02"
             b"\x30\x39\x30\x39\x00\x08\x00\x00")
    try:
        mech, why = choose_kprobe_mechanism()
    except PktlabError as e:
        mech, why = None, {"kprobe": str(e)}
    why_text = "; ".join(f"not {m}: {w}" for m, w in why.items())
    with new_lab() as lab:
        for hook in PACKET_HOOKS:
            if hook == "kprobe" and mech is None:
                out[hook]["why"] = why_text
                continue
            try:
                with HookSet(lab, [hook]) as hs, Injector(lab) as inj:
                    inj.send(frame)
                    deadline = time.monotonic() + 2
                    n = 0
                    while time.monotonic() < deadline and n == 0:
                        n = len(hs.drain()[hook])
                        time.sleep(0.005)
                    via = hs.via[hook]
            except PktlabError as e:
                out[hook]["why"] = str(e)
                continue
            if n:
                out[hook].update(available=True, via=via,
                                 why=why_text if hook == "kprobe" and why_text else
                                 f"attached ({via}) and recorded a frame sent across the lab")
            else:
                out[hook].update(via=via, why=f"attached ({via}) but no record came back")
        out.update(_probe_socket_hooks(lab))
    return out


def _probe_socket_hooks(lab):
    """Each socket-end hook alone on a real TCP server in the lab's cgroup, one real request
    from src: proven when a record carrying the request comes back."""
    from .kernel.sockhooks import SocketHooks
    from .lab.cgroup import require_cgroup2, v1_net_controllers
    from .sockets import apps
    out = {h: {"available": False, "via": None, "why": ""} for h in SOCKET_HOOKS}
    try:
        require_cgroup2()
        cgroup = lab.cgroup()
    except PktlabError as e:
        for h in ("cgroup-ingress", "sk-skb"):
            out[h]["why"] = str(e)
        cgroup = None
    for hook in SOCKET_HOOKS:
        if cgroup is None and hook in ("cgroup-ingress", "sk-skb"):
            continue
        nonce = f"pktlab-doctor-{hook}"
        try:
            with SocketHooks(lab, cgroup, [hook]) as sh, \
                    apps.Server(lab, "tcp", 7001, cgroup=cgroup) as srv:
                sh.attach_socket(srv.pid, srv.fd)
                apps.request(lab, "tcp", 7001, nonce)
                got = [r for r in sh.drain()[hook] if nonce.encode()[:16] in bytes(r["payload"])]
                via = sh.via[hook]
        except PktlabError as e:
            out[hook]["why"] = str(e)
            continue
        if got:
            out[hook].update(available=True, via=via, why="attached and recorded a real request "
                             "from src to a server in the lab")
            continue
        why = f"attached ({via}) but no record of a real request came back"
        if hook in ("cgroup-ingress", "sk-skb") and v1_net_controllers():
            where = ", ".join(f"{c} at {p}" for p, c in v1_net_controllers())
            why += (f": cgroup v1 {where} is mounted, and once used the kernel stops matching "
                    "sockets to cgroup v2 (dmesg: 'disabling cgroup2 socket matching'); fix: "
                    "unmount it and reboot")
        out[hook].update(via=via, why=why)
    return out


def _probe_mptcp(checks_ok, new_lab=_own_lab):
    """In a throwaway lab: net.mptcp.enabled in its namespaces (the check "mptcp", with the
    fix), and the sock-ops hook proven on a real connection ({"sock-ops": {...}})."""
    hook = {"available": False, "via": None, "why": ""}
    if not checks_ok:
        hook["why"] = ("not tried: needs root (see privileges)" if not _is_root() else
                       "not tried: bcc or its compile failed (see checks)")
        return _check_mptcp_host(), {"sock-ops": hook}
    from .lab.cgroup import require_cgroup2
    from . import mptcp
    with new_lab() as lab:
        why = mptcp.why_mptcp_not(lab)
        check = (Check("mptcp", False, why, "a kernel with CONFIG_MPTCP=y" if "CONFIG_MPTCP"
                       in why else f"sysctl -w net.mptcp.enabled=1 inside the namespace "
                       f"(`ip netns exec <lab>-dut sysctl -w net.mptcp.enabled=1`); pktlab's "
                       "labs start with it on unless the kernel says otherwise")
                 if why else
                 Check("mptcp", True, "net.mptcp.enabled = 1 in a lab's namespaces "
                       "(per namespace; socket(IPPROTO_MPTCP) works there)"))
        try:
            require_cgroup2()
            ok, via, text = mptcp.prove_sockops(lab)
            hook.update(available=ok, via=via if ok else None, why=text)
        except PktlabError as e:
            hook["why"] = str(e)
    return check, {"sock-ops": hook}


def _check_learner_loader():
    """A learner loader's worker started for real: what it is from inside (its probe)."""
    from .kernel import loader
    ok, why = loader.available()
    if not ok:
        return Check("learner loader", False, why, "run scripts/setup.sh (it makes the "
                     f"{loader.ACCOUNT} account and the kernel headers' links)")
    try:
        me = loader.probe()
    except PktlabError as e:
        return Check("learner loader", False, str(e), "run scripts/setup.sh")
    caps = ", ".join(me["effective"]) or "none"
    good = (me["uid"][0] == loader.account()[0] and me["effective"] == ["bpf", "net_admin"]
            and me["bounding"] == me["effective"] and me["no_new_privs"] == 1
            and me["seccomp"] == 2 and me["listener"])
    return Check("learner loader", good,
                 f"learner programs load as {loader.ACCOUNT} (uid {me['uid'][0]}) with {caps} "
                 f"only, no-new-privs, seccomp, {me['header_files']} kernel header files in "
                 "view and nothing else of this machine", "run scripts/setup.sh")


def _check_mptcp_host():
    """Without a lab (not root): what this namespace says, which is not a lab's."""
    try:
        with open(MPTCP_SYSCTL) as f:
            v = f.read().strip()
    except FileNotFoundError:
        return Check("mptcp", False, f"no {MPTCP_SYSCTL}: this kernel has no MPTCP",
                     "a kernel with CONFIG_MPTCP=y (lesson 10 needs it)")
    except OSError as e:
        return Check("mptcp", False, f"{MPTCP_SYSCTL}: {e.strerror}", SUDO_FIX)
    return Check("mptcp", v == "1", f"net.mptcp.enabled = {v} here (not checked in a lab: "
                 "that needs root, and the setting is per namespace)", SUDO_FIX)


def run(new_lab=_own_lab):
    """All checks: (report dict, exit status). new_lab() -> a context manager yielding a lab
    for the probes (default: one of the doctor's own; pktlabd gives one tagged as its
    learner's)."""
    checks = [_check_root(), _check_bpf_syscall()]
    bcc_check, _ = _check_bcc()
    checks.append(bcc_check)
    walker = _check_walker()
    checks += [_check_headers(), _check_btf(), _check_tracefs(), _check_cgroup2(),
               _check_cgroup_v1_net(), walker]
    can_compile = checks[0].ok and bcc_check.ok
    if can_compile:
        checks.append(_check_compile())
    else:
        checks.append(Check("bcc compile", False, "not tried: needs " + " and ".join(
            w for w, ok in (("root", checks[0].ok), ("bcc", bcc_check.ok)) if not ok),
            SUDO_FIX if not checks[0].ok else "fix the checks above first"))
    if can_compile:
        checks.append(_check_learner_loader())
    checks += [
        _check_tool("ip", "iproute2", "apt-get install iproute2", required=True),
        _check_tool("tcpreplay", "the replay benchmark compares with it",
                    "apt-get install tcpreplay"),
        _check_tool("bpftool", "handy for looking at programs", "apt-get install bpftool"),
        _check_tool("chromium", "the browser test drives JupyterLab with it",
                    "apt-get install chromium (scripts/setup.sh --test)"),
    ]
    required = {"privileges", "bpf syscall", "bcc", "bcc compile", "ip", "kernel headers", "btf"}
    core_ok = all(c.ok for c in checks if c.name in required)
    try:
        hooks = _probe_hooks(core_ok, new_lab)
    except PktlabError as e:
        hooks = {h: {"available": False, "via": None, "why": f"lab failed: {e}"}
                 for h in HOOK_NAMES}
    try:
        mptcp_check, more = _probe_mptcp(core_ok, new_lab)
    except PktlabError as e:
        mptcp_check = Check("mptcp", False, f"lab failed: {e}", "see the checks above")
        more = {h: {"available": False, "via": None, "why": f"lab failed: {e}"}
                for h in CONNECTION_HOOKS}
    checks.append(mptcp_check)
    hooks.update(more)
    lab_ok = core_ok and hooks["xdp"]["available"] and hooks["tc-ingress"]["available"]
    report = {"ok": lab_ok, "checks": [c.to_dict() for c in checks], "hooks": hooks,
              "kernel": platform.release(), "root": _is_root(),
              "without_root": {"works": list(WITHOUT_ROOT) if walker.ok else [],
                               "needs_root": list(NEEDS_ROOT)}}
    return report, 0 if lab_ok else 2


def format_text(report):
    lines = [f"pktlab doctor — kernel {report['kernel']}", ""]
    for c in report["checks"]:
        mark = "ok  " if c["ok"] else "FAIL"
        lines.append(f"  [{mark}] {c['name']:<15} {c['detail']}")
        if c["fix"]:
            lines.append(f"         {'':<15} fix: {c['fix']}")
    lines.append("")
    lines.append("  hooks:")
    for h, v in report["hooks"].items():
        mark = "ok  " if v["available"] else "no  "
        via = f" via {v['via']}" if v["via"] else ""
        lines.append(f"  [{mark}] {h:<15}{via}")
        if v["why"]:
            lines.append(f"         {v['why']}")
    lines.append("")
    if report["ok"]:
        lines.append("the lab can run here")
    elif not report.get("root", True):
        works = report.get("without_root", {}).get("works")
        if works:
            lines.append("without root, these work here: " + "; ".join(works))
        lines.append("these need root: " + ", ".join(NEEDS_ROOT) + "; " + SUDO_FIX +
                     " to check them")
    else:
        lines.append("the lab cannot run here: fix the FAIL lines above")
    return "\n".join(lines)
