"""The bench's chart: the live ladder as bars per point, grouped by frame size, with the
generator's rate as a line; the test-run costs as a second panel.

    fig = bench.plot(results)                            # matplotlib Figure
"""

from .spec import FCS_NOTE, POINTS


_COLORS = {
    "xdp_native_drop": "#08519c", "xdp_drop": "#3182bd", "tc_drop": "#31a354",
    "nft_drop": "#e6550d", "socket_drop": "#756bb1", "xdp_parse": "#9ecae1",
    "tc_ingress_parse": "#a1d99b", "kprobe_parse": "#bcbddc", "tc_egress_parse": "#fdae6b",
}


def plot(results, ax=None):
    """Bars per point, grouped by frame size, with the generator's rate as a line; with
    micro results and no `ax`, a second panel with the test-run costs. Returns the Figure."""
    from matplotlib.figure import Figure
    lv = results.get("live") if "live" in results or "micro" in results else results
    mi = results.get("micro")
    has_live = bool(lv and lv.get("by_size"))
    if ax is None:
        n = int(has_live) + int(bool(mi))
        fig = Figure(figsize=(7 * max(n, 1) + (3 if has_live else 0), 5.6),
                     layout="constrained")
        axes = fig.subplots(1, max(n, 1), squeeze=False,
                            width_ratios=([1] * (n - 1) + [1.6]) if n == 2 else None)[0]
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
    names = [n for n in mi if n != "_meta" and mi[n].get("ns_per_pkt") is not None]
    xs = range(len(names))
    vals = [mi[n]["ns_per_pkt"] for n in names]
    base = [mi[n]["baseline_ns_per_pkt"] for n in names]
    err = [[mi[n]["ns_per_pkt"] - mi[n]["spread"]["min"] for n in names],
           [mi[n]["spread"]["max"] - mi[n]["ns_per_pkt"] for n in names]]
    ax.bar([x - 0.2 for x in xs], vals, 0.4, yerr=err, capsize=3, label="program", color="#3182bd")
    ax.bar([x + 0.2 for x in xs], base, 0.4, label="empty program (same type)", color="#bdbdbd")
    lim = [(x, mi[n]["limit_ratio"] * mi[n]["baseline_ns_per_pkt"]) for x, n in zip(xs, names)
           if "limit_ratio" in mi[n]]
    if lim:
        ax.hlines([y for _, y in lim], [x - 0.45 for x, _ in lim], [x + 0.05 for x, _ in lim],
                  colors="#d62728", linestyles=":", label="limit (x empty)")
    for x, n in zip(xs, names):
        ax.annotate(f"{mi[n]['ratio']:.1f}x", (x - 0.2, mi[n]["spread"]["max"]),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                    textcoords="offset points")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylabel("ns per packet (BPF_PROG_TEST_RUN)")
    ax.set_title("Per-program cost (median, min-max over rounds)")
    ax.legend(fontsize=8)


def _plot_live(lv, ax):
    sizes = list(lv["by_size"])
    shown = [p for p in POINTS if any("pps" in lv["by_size"][s].get(p, {}) for s in sizes)]
    width = min(0.8 / max(len(shown), 1), 0.2)
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
            ax.annotate(f"{y:.2f}", (b.get_x() + b.get_width() / 2, y), ha="center",
                        va="bottom", fontsize=6, rotation=90, xytext=(0, 2),
                        textcoords="offset points")
    first = True
    for j, s in enumerate(sizes):
        g = lv["by_size"][s].get("generator", {}).get("pps")
        if g:
            ax.hlines(g / 1e6, j - 0.45, j + 0.45, colors="black", linestyles="--",
                      label=f"generator alone ({lv['generator']})" if first else None)
            first = False
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{s} B" for s in sizes])
    ax.set_ylabel("Mpps at the point")
    ax.set_title(f"Live ladder on a veth lab ({FCS_NOTE})", fontsize=10)
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3,
              frameon=False)

