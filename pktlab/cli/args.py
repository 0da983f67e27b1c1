"""The `pktlab` command's arguments: types that refuse a hostile value before anything runs,
and the checks that need more than one argument.
"""

import os

#: every lab carries IPv6, which needs an MTU of 1280; pktlab labs stop at jumbo frames
MTU_MIN, MTU_MAX = 1280, 9000


def _argtype(fn):
    """Wrap a checker raising ValueError into an argparse type (argparse then names the
    option: "argument --pps: inf: ...")."""
    def check(text):
        import argparse
        try:
            return fn(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    check.__name__ = fn.__name__
    return check


@_argtype
def rate(text):
    """--pps / --mbps: a finite number above 0."""
    import math
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number (e.g. 1000)") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{text}: a rate must be positive and finite (e.g. 1000); "
                         "for as fast as the lab takes it, use --topspeed")
    return v


@_argtype
def count(text):
    """--loop / --limit: a whole number, at least 1."""
    try:
        v = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise ValueError(f"{v}: must be at least 1 (leave the option out for all of them)")
    return v


def _whole(text, lo, hi, what):
    try:
        v = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if not lo <= v <= hi:
        raise ValueError(f"{v}: {what} must be {lo:,}..{hi:,}")
    return v


@_argtype
def flows(text):
    """conntrack --flows: concurrent flows, as many as the ports and a few seconds allow."""
    from ..sockets.experiment import FLOWS_MAX
    return _whole(text, 1, FLOWS_MAX, "the number of flows")


@_argtype
def map_entries(text):
    """conntrack --max-entries: a map's size, at least 1, not an absurd preallocation."""
    from ..sockets.experiment import MAX_ENTRIES_MAX
    return _whole(text, 1, MAX_ENTRIES_MAX, "a map's entries")


@_argtype
def port(text):
    """belt --port / --to-port: a TCP/UDP port."""
    try:
        v = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a port number") from None
    if not 1 <= v <= 65535:
        raise ValueError(f"{v}: a port is 1..65535")
    return v


@_argtype
def mtu(text):
    """--mtu: what a lab can have: IPv6 needs 1280, pktlab labs go up to 9000."""
    try:
        v = int(text, 10)
    except ValueError:
        raise ValueError(f"{text!r} is not a whole number") from None
    if v < MTU_MIN:
        raise ValueError(f"{v}: IPv6 needs an MTU of at least {MTU_MIN} and every lab carries "
                         f"IPv6; use {MTU_MIN}..{MTU_MAX}")
    if v > MTU_MAX:
        raise ValueError(f"{v}: above {MTU_MAX}, the largest MTU a pktlab lab takes (jumbo "
                         f"frames); use {MTU_MIN}..{MTU_MAX}")
    return v


@_argtype
def hook(text):
    """verify --hook: a hook whose program type verify loads (xdp, tc-ingress, ...)."""
    from ..kernel.verifier import check_hook
    check_hook(text)
    return text


@_argtype
def run_hook(text):
    """run --hook: a hook pktlab run attaches at (xdp, tc-ingress, tc-egress)."""
    from ..replay.learner import RUN_HOOKS
    if text not in RUN_HOOKS:
        raise ValueError(f"hook {text!r}: pktlab run attaches at {', '.join(RUN_HOOKS)}")
    return text


@_argtype
def seconds(text):
    """mptcp --seconds: how long the transfer lasts."""
    import math
    from ..mptcp.run import SECONDS_MAX, SECONDS_MIN
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(v) or not SECONDS_MIN <= v <= SECONDS_MAX:
        raise ValueError(f"{text}: a transfer lasts {SECONDS_MIN:g}..{SECONDS_MAX:g} s")
    return v


def check_mptcp(args):
    """mptcp's policy against its paths, and the faults' paths: (policy, drop, down), or one
    line (exit 2) before any lab."""
    from .. import mptcp
    drop = (args.drop_path, 1.0, 3.0) if args.drop_path is not None else None
    down = (args.path_down, 1.0) if args.path_down is not None else None
    try:
        return mptcp.check(args.paths, args.policy, args.seconds, drop, down)
    except ValueError as e:
        raise ValueError(f"mptcp: {e}") from None


def check_verify(args):
    """verify's file, read now (missing, a directory, not text: one line, exit 2)."""
    from ..kernel.verifier import read_source
    read_source(args.file)


def check_rewrite(args):
    """--dst-mac / --dst-ip4 / --dst-ip6 must parse now, not after the lab is built."""
    from ..packet.rewrite import Rewriter
    for opt, key in (("--dst-mac", "dst_mac"), ("--dst-ip4", "dst_ip4"), ("--dst-ip6", "dst_ip6")):
        val = getattr(args, key)
        if val and val != "auto":
            try:
                Rewriter(**{key: val})
            except ValueError as e:
                raise ValueError(f"{opt} {val}: {e}") from None


def check_plot(path):
    """--plot FILE: a format matplotlib writes, in a directory we may write to (checked now,
    not after minutes of benchmarks)."""
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in ("png", "svg", "pdf", "jpg", "jpeg", "eps", "ps", "tif", "tiff", "webp"):
        raise ValueError(f"--plot {path}: name a .png, .svg or .pdf file (the format follows "
                         "the extension)")
    d = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(d):
        raise FileNotFoundError(f"--plot {path}: directory {d} does not exist; create it first")
    if not os.access(d, os.W_OK) or os.path.isdir(path):
        raise ValueError(f"--plot {path}: cannot write there; pick another file")


def check_lab_args(args):
    """Options that only mean something for some actions are refused for the others."""
    a = args.action
    if args.names and a != "down":
        raise ValueError(f"lab {a} takes no lab names (`pktlab lab down NAME` removes one lab)")
    if a == "down" and not args.names:
        raise ValueError("lab down: name the lab(s) to take down (see `pktlab lab status`), "
                         "or use `pktlab lab clean` for labs whose owner is gone")
    if args.all and a != "clean":
        raise ValueError(f"lab {a}: --all belongs to `pktlab lab clean`")
    for opt, val in (("--prefix", args.prefix), ("--mtu", args.mtu)):
        if val is not None and a != "up":
            raise ValueError(f"lab {a}: {opt} belongs to `pktlab lab up`")
    if args.prefix is not None:
        from ..lab import PREFIX_RE
        if not PREFIX_RE.match(args.prefix):
            raise ValueError(f"lab up --prefix {args.prefix!r}: use a lowercase letter then up "
                             "to 5 lowercase letters or digits (e.g. pl, lab1)")


def rewrite_options(args):
    """--rewrite (all three 'auto') and --dst-mac/--dst-ip4/--dst-ip6 -> Replayer's dict."""
    opts = {k: getattr(args, k) for k in ("dst_mac", "dst_ip4", "dst_ip6")}
    if args.rewrite:
        opts = {k: v or "auto" for k, v in opts.items()}
    return opts if any(opts.values()) else None
