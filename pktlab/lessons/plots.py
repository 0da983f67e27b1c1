"""Plots for the lessons. Each takes ``ax=None`` and returns the Figure (no pyplot state)."""

#: one colour per hook, used by every lesson plot
HOOK_COLOURS = {"tc-egress": "#6f42c1", "kprobe": "#d1242f", "xdp": "#0969da",
                "tc-ingress": "#1a7f37", "cgroup-ingress": "#bf8700", "socket-filter": "#bc4c00",
                "sk-skb": "#1b7c83", "recv": "#57606a"}
VERDICT_COLOURS = {"agree": "#1a7f37", "explained": "#bf8700", "disagree": "#cf222e",
                   "lost": "#8250df", "skipped": "#afb8c1"}


def show_figures_inline():
    """Let IPython show matplotlib Figures made without pyplot (as every plot here is): the
    inline backend registers its PNG formatter only once pyplot is imported."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    ip = get_ipython()
    if ip is None or getattr(show_figures_inline, "done", False):
        return
    from IPython.core.pylabtools import select_figure_formats
    select_figure_formats(ip, {"png"}, bbox_inches="tight")
    show_figures_inline.done = True


def _axes(ax, size):
    show_figures_inline()
    if ax is not None:
        return ax.figure, ax
    from matplotlib.figure import Figure
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def conveyor_belt(belts, ax=None, labels=None):
    """The conveyor belt: when each hook saw a packet, in µs after the first hook saw it.

    ``belts``: a Belt (LiveLab.follow) or a list of them, one row each. Returns the Figure."""
    from .html import NotHere
    if isinstance(belts, NotHere):
        return belts              # not live here: show the reason instead of a plot
    if not isinstance(belts, (list, tuple)):
        belts = [belts]
    crowded = any(len(getattr(b, "times", {})) > 4 for b in belts)
    fig, ax = _axes(ax, (9 if crowded else 8, 1.4 + (1.7 if crowded else 0.8) * len(belts)))
    seen_labels = set()
    spans = []
    for row, belt in enumerate(belts):
        times = getattr(belt, "times", {})
        if not times:
            ax.text(0, row, "  no hook recorded this packet", va="center", fontsize=9)
            continue
        t0 = min(times.values())
        order = sorted(times, key=times.get)
        xs = [(times[h] - t0) / 1000 for h in order]
        spans += [x for x in xs if x > 0]
        ax.plot(xs, [row] * len(xs), color="#8c959f", lw=2, zorder=1)
        for i, (h, x) in enumerate(zip(order, xs)):
            ax.scatter([x], [row], s=90, color=HOOK_COLOURS.get(h, "gray"), zorder=2,
                       label=h if h not in seen_labels else None)
            seen_labels.add(h)
            # many hooks close together (the socket end follows the wire by far more than the
            # wire's own gaps): labels on staggered levels, above and below, never on top
            up = i % 2 == 0
            dy = (9 + 24 * ((i // 2) % 2)) * (1 if up else -1)
            ax.annotate(f"{h}\n{x:.1f} µs", (x, row), xytext=(0, dy), textcoords="offset points",
                        ha="center", va="bottom" if up else "top", fontsize=8)
    log = len(spans) >= 4 and max(spans) > 20 * min(spans)
    if log:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yticks(range(len(belts)))
    ax.set_yticklabels(labels or [f"packet {i + 1}" for i in range(len(belts))])
    ax.set_ylim(len(belts) - 0.3, -0.9)        # the first packet on top
    ax.set_xlabel("µs after the first hook saw the packet (bpf_ktime_get_ns at each hook)" +
                  ("; log scale past 1 µs" if log else ""))
    ax.set_title("One packet through every hook" if len(belts) == 1 else
                 f"{len(belts)} packets, each through every hook")
    ax.margins(x=0.08)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    return fig


def agreement(summary, ax=None):
    """Per hook, a bar split into agree / explained / disagree / lost / skipped (a replay's
    summary dict, as ``ReplayView.summary()`` or ``pktlab replay --json``)."""
    hooks = [h for h in ("tc-egress", "kprobe", "xdp", "tc-ingress") if h in summary["hooks"]]
    fig, ax = _axes(ax, (7, 0.9 + 0.5 * len(hooks)))
    for i, h in enumerate(hooks):
        t = summary["hooks"][h]
        left = 0
        for v, colour in VERDICT_COLOURS.items():
            n = t.get(v, 0)
            if n:
                ax.barh(i, n, left=left, color=colour, label=v if i == 0 or v not in
                        ax.get_legend_handles_labels()[1] else None)
                left += n
    ax.set_yticks(range(len(hooks)))
    ax.set_yticklabels(hooks)
    ax.invert_yaxis()
    ax.set_xlabel("frames")
    ax.set_title(f"{summary.get('packets', '?')} frames: each hook's record against the walker's")
    handles, names = ax.get_legend_handles_labels()
    uniq = dict(zip(names, handles))
    if uniq:
        ax.legend(uniq.values(), uniq.keys(), fontsize=8, loc="upper left",
                  bbox_to_anchor=(1.01, 1))
    return fig


def belt_views(run, ax=None):
    """What each hook sees of one request's frame (a BeltRun): one bar per hook over the
    frame's bytes, from where its view starts (the Ethernet header, the IP header, the TCP/UDP
    header, the payload) to the end; the header boundaries marked. Returns the Figure."""
    from ..sockets.expect import ENTRY, entry_bytes
    from ..packet.walker import walk_record
    hooks = [h for h in run.order]
    fig, ax = _axes(ax, (8, 0.9 + 0.45 * max(1, len(hooks))))
    walked = walk_record(run.frame)
    total = len(run.frame)
    for i, h in enumerate(hooks):
        data, _ = entry_bytes(run.frame, walked, ENTRY[h])
        start = total - len(data) if ENTRY[h] != "eth" else 0
        ax.barh(i, len(data), left=start, color=HOOK_COLOURS.get(h, "gray"))
        ax.text(start + 1, i, f" {len(data)} bytes", va="center", fontsize=8, color="white")
    l3 = 14 + 4 * int(walked.vlan_depth)
    for x, name in ((0, "Ethernet"), (l3, "IP"), (int(walked.payload_off) - (
            int(walked.tcp_doff) * 4 if walked.l4_proto == 6 else 8), "TCP/UDP"),
            (int(walked.payload_off), "payload")):
        ax.axvline(x, color="#8c959f", lw=0.8, ls="--")
        ax.text(x, -0.8, name, fontsize=8, ha="left", va="bottom")
    ax.set_yticks(range(len(hooks)))
    ax.set_yticklabels(hooks)
    ax.set_ylim(len(hooks) - 0.5, -1.0)
    ax.set_xlim(0, total)
    ax.set_xlabel(f"bytes of the frame that left src ({total} bytes)")
    ax.set_title("What each hook sees of the same request")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig
