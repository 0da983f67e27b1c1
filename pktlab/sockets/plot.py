"""The conntrack comparison as bars (lesson 09): per policy, flows connected and echoed, SYN
inserts the map refused, live flows it evicted; the flow count and the map's size as lines.

    fig = plot_conntrack(doc)             # doc: pktlab.sockets.experiment.run()'s result
    plot_conntrack(doc, ax=my_axes)
"""

MEASURES = (("connected", "connected", "#4C72B0"), ("echoed", "echoed", "#55A868"),
            ("insert_failed", "SYN inserts refused", "#C44E52"),
            ("evicted", "live flows evicted", "#8172B2"))


def plot_conntrack(doc, ax=None):
    """Grouped bars, one group per policy; returns the figure."""
    own = ax is None
    if own:                     # no pyplot: a figure of its own, shown once (as its value)
        from matplotlib.figure import Figure
        fig = Figure(figsize=(8, 4.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    policies = list(doc["variants"])
    width = 0.8 / len(MEASURES)
    for i, (key, label, color) in enumerate(MEASURES):
        xs = [p + (i - (len(MEASURES) - 1) / 2) * width for p in range(len(policies))]
        ys = [doc["variants"][p][key] for p in policies]
        bars = ax.bar(xs, ys, width, label=label, color=color)
        ax.bar_label(bars, labels=[str(y) if y else "" for y in ys], fontsize=7, padding=1)
    ax.axhline(doc["flows"], color="0.3", linestyle="--", linewidth=1)
    # at the axes' right edge, which autoscaling leaves a hair inside: not clipped away
    ax.annotate(f"{doc['flows']} flows", (len(policies) - 0.5, doc["flows"]), fontsize=8,
                ha="right", va="bottom", color="0.3", annotation_clip=False)
    ax.axhline(doc["max_entries"], color="#C44E52", linestyle=":", linewidth=1)
    ax.annotate(f"map size {doc['max_entries']}", (len(policies) - 0.5, doc["max_entries"]),
                fontsize=8, ha="right", va="bottom", color="#C44E52", annotation_clip=False)
    ax.set_xticks(range(len(policies)), policies)
    ax.set_ylabel("flows (inserts: SYNs)")
    ax.set_title("the socket table vs conntrack maps: what gets through")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncols=len(MEASURES),
              frameon=False)
    ax.margins(y=0.15)
    if own:                     # a caller's figure is laid out by the caller
        fig.tight_layout()
    return fig
