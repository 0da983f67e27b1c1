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


#: the belt's labels: gap to the line, gap between stacked labels, gap between neighbours (pt)
_LABEL_GAP, _LEVEL_GAP, _SIDE_GAP = 7.0, 3.0, 4.0


def conveyor_belt(belts, ax=None, labels=None):
    """The conveyor belt: when each hook saw a packet, in µs after the first hook saw it.

    ``belts``: a Belt (LiveLab.follow) or a list of them, one row each. Returns the Figure.

    Each dot's label (hook and time) is placed where it overlaps no other label, however close
    the hooks are: measured in the drawn figure, labels take the nearest free level above or
    below their row, and each row gets the height its labels need."""
    from .html import NotHere
    if isinstance(belts, NotHere):
        return belts              # not live here: show the reason instead of a plot
    if not isinstance(belts, (list, tuple)):
        belts = [belts]
    own = ax is None
    fig, ax = _axes(ax, (9, 2.0 * len(belts) + 1.2))
    seen_labels = set()
    spans, texts = [], []
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
        for h, x in zip(order, xs):
            ax.scatter([x], [row], s=90, color=HOOK_COLOURS.get(h, "gray"), zorder=2,
                       label=h if h not in seen_labels else None)
            seen_labels.add(h)
            t = ax.annotate(f"{h}\n{x:.1f} µs", (x, row), xytext=(0, _LABEL_GAP),
                            textcoords="offset points", ha="center", va="bottom", fontsize=8.5)
            t.set_in_layout(False)
            texts.append((row, x, t))
    log = len(spans) >= 4 and max(spans) > 20 * min(spans)
    if log:
        ax.set_xscale("symlog", linthresh=1.0)
    ax.set_yticks(range(len(belts)))
    ax.set_yticklabels(labels or [f"packet {i + 1}" for i in range(len(belts))])
    ax.set_xlabel("µs after the first hook saw the packet (bpf_ktime_get_ns at each hook)" +
                  ("; log scale past 1 µs" if log else ""))
    ax.set_title("One packet through every hook" if len(belts) == 1 else
                 f"{len(belts)} packets, each through every hook")
    ax.margins(x=0.1)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    _place_labels(fig, ax, texts, len(belts), resize=own)
    return fig


def _place_labels(fig, ax, texts, nrows, resize):
    """Give each label (row, x, annotation) a level: +1, -1, +2, -2... above or below its row,
    the first where it overlaps no label already placed there (measured in points on the drawn
    figure; a label at either end of the axes is aligned inwards first); then make each row as
    tall as its labels need and keep them inside the axes."""
    if not texts:
        ax.set_ylim(nrows - 0.5, -0.5)
        return
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    renderer = fig.canvas.get_renderer()
    to_pt = 72 / fig.dpi
    fig.draw_without_rendering()
    size = {}
    for _row, _x, t in texts:
        bb = t.get_window_extent(renderer)
        size[t] = (bb.width * to_pt, bb.height * to_pt)
    height = max(h for _w, h in size.values())
    box = ax.get_window_extent(renderer)
    left, right = box.x0 * to_pt, box.x1 * to_pt
    levels = {}
    for row in range(nrows):
        placed = {}                                  # level -> [(left, right)] in points
        for _r, x, t in sorted((e for e in texts if e[0] == row), key=lambda e: e[1]):
            cx = ax.transData.transform((x, row))[0] * to_pt
            w = size[t][0]
            span, ha = (cx - w / 2, cx + w / 2), "center"
            if span[1] > right:
                span, ha = (cx - w, cx), "right"
            elif span[0] < left:
                span, ha = (cx, cx + w), "left"
            t.set_ha(ha)
            span = (span[0] - _SIDE_GAP, span[1] + _SIDE_GAP)
            level = next(lv for k in range(1, 50) for lv in (k, -k)
                         if all(span[1] <= a or span[0] >= b for a, b in placed.get(lv, [])))
            placed.setdefault(level, []).append(span)
            levels[t] = level

    def reach(n):                                   # points from a row to its n-th level's edge
        return _LABEL_GAP + n * height + (n - 1) * _LEVEL_GAP if n else 0.0
    up = reach(max([lv for lv in levels.values() if lv > 0] or [0]))
    down = reach(-min([lv for lv in levels.values() if lv < 0] or [0]))
    if resize:                                      # rows far enough apart for their labels
        w, _h = fig.get_size_inches()
        fig.set_size_inches(w, ((up + down + 16) * nrows + 8) / 72 + 1.3)
        fig.draw_without_rendering()
    for _row, _x, t in texts:
        lv = levels[t]
        dy = _LABEL_GAP + (abs(lv) - 1) * (height + _LEVEL_GAP)
        t.xyann = (0, dy if lv > 0 else -dy)
        t.set_va("bottom" if lv > 0 else "top")
    # the y range: the rows' labels inside the axes. With H points of axes height and u points
    # per row: H = u * (nrows - 1 + 0.2) + up + down
    hpt = ax.get_window_extent(renderer).height * to_pt
    u = max((hpt - up - down) / (nrows - 1 + 0.2), 1.0)
    ax.set_ylim(nrows - 1 + down / u + 0.1, -(up / u + 0.1))   # the first packet on top


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
