"""The bench's chart: the live ladder as bars per point, grouped by frame size, with the
generator's rate as a line; the test-run costs as a second panel.

    fig = bench.plot(results)                            # matplotlib Figure
"""

from .spec import POINTS


_COLORS = {
    "xdp_native_drop": "#08519c", "xdp_drop": "#3182bd", "tc_drop": "#31a354",
    "nft_drop": "#e6550d", "socket_drop": "#756bb1", "xdp_parse": "#9ecae1",
    "tc_ingress_parse": "#a1d99b", "kprobe_parse": "#bcbddc", "tc_egress_parse": "#fdae6b",
}


#: no text on the chart smaller than this (points), none rotated: a learner reads it on a
#: projector
MIN_FONT = 8.5


def plot(results, ax=None):
    """Bars per point, grouped by frame size, with the generator's rate as a line; with
    micro results and no `ax`, a second panel with the test-run costs. Returns the Figure."""
    from matplotlib.figure import Figure
    lv = results.get("live") if "live" in results or "micro" in results else results
    mi = results.get("micro")
    has_live = bool(lv and lv.get("by_size"))
    if ax is None:
        n = int(has_live) + int(bool(mi))
        fig = Figure(figsize=(11.5, 5.2) if n == 2 else (7, 5.2), layout="constrained")
        axes = fig.subplots(1, max(n, 1), squeeze=False,
                            width_ratios=[1, 1.15] if n == 2 else None)[0]
        if mi:
            _plot_micro(mi, axes[0])
        if has_live:
            _plot_live(lv, axes[-1])
        if not mi and not has_live:
            axes[0].text(0.5, 0.5, "nothing measured", ha="center", va="center")
        return fig
    if has_live:
        _plot_live(lv, ax)
    elif mi:
        _plot_micro(mi, ax)
    return ax.figure


def _plot_micro(mi, ax):
    """One row per program (names readable, not rotated): its cost and its empty program's,
    the min-max over rounds as a whisker, and how many times the empty one it costs."""
    names = [n for n in mi if n != "_meta" and mi[n].get("ns_per_pkt") is not None]
    ys = range(len(names))
    vals = [mi[n]["ns_per_pkt"] for n in names]
    base = [mi[n]["baseline_ns_per_pkt"] for n in names]
    err = [[mi[n]["ns_per_pkt"] - mi[n]["spread"]["min"] for n in names],
           [mi[n]["spread"]["max"] - mi[n]["ns_per_pkt"] for n in names]]
    ax.barh([y - 0.2 for y in ys], vals, 0.4, xerr=err, capsize=3, label="the program",
            color="#3182bd")
    ax.barh([y + 0.2 for y in ys], base, 0.4, label="an empty program of its type",
            color="#bdbdbd")
    for y, n in zip(ys, names):
        ax.annotate(f"{mi[n]['ratio']:.1f}× empty", (mi[n]["spread"]["max"], y - 0.2),
                    ha="left", va="center", fontsize=MIN_FONT, xytext=(4, 0),
                    textcoords="offset points")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(names, fontsize=9.5)
    ax.invert_yaxis()
    ax.set_xlim(0, max(mi[n]["spread"]["max"] for n in names) * 1.3 if names else 1)
    ax.set_xlabel("ns per packet (each program run in the kernel on the same bytes)",
                  fontsize=9.5)
    ax.set_title("What each program costs per packet", fontsize=11)
    ax.tick_params(labelsize=9.5)
    ax.legend(fontsize=MIN_FONT + 0.5, loc="lower right")


def _plot_live(lv, ax):
    sizes = list(lv["by_size"])
    shown = [p for p in POINTS if any("pps" in lv["by_size"][s].get(p, {}) for s in sizes)]
    width = min(0.8 / max(len(shown), 1), 0.25)
    # a bar's label is horizontal; where bars are too narrow for one, labels alternate
    # between two heights so that neighbours never overlap
    fig_w = ax.figure.get_size_inches()[0] * 72 * ax.get_position().width
    crowded = fig_w / max(len(sizes), 1) * width < 26
    for i, p in enumerate(shown):
        xs, ys = [], []
        for j, s in enumerate(sizes):
            m = lv["by_size"][s].get(p, {})
            if "pps" in m:
                xs.append(j - 0.4 + width * (i + 0.5))
                ys.append(m["pps"] / 1e6)
        bars = ax.bar(xs, ys, width, label=POINTS[p][1], color=_COLORS.get(p),
                      hatch="//" if POINTS[p][0] == "parse" else None, edgecolor="white")
        for b, y in zip(bars, ys):
            lift = 2 + (11 if crowded and i % 2 else 0)
            ax.annotate(f"{y:.2f}", (b.get_x() + b.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=MIN_FONT, xytext=(0, lift),
                        textcoords="offset points")
    first = True
    for j, s in enumerate(sizes):
        g = lv["by_size"][s].get("generator", {}).get("pps")
        if g:
            ax.hlines(g / 1e6, j - 0.45, j + 0.45, colors="black", linestyles="--",
                      label="the generator alone (nobody receives)" if first else None)
            first = False
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{s} B" for s in sizes])
    ax.tick_params(labelsize=9.5)
    ax.set_ylabel("million packets per second at the point", fontsize=9.5)
    ax.set_title("Packets per second each point keeps up with", fontsize=11)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.12)
    ax.legend(fontsize=MIN_FONT + 0.5, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2,
              frameon=False)
