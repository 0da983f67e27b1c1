"""Plots of a run (ax=None: a new figure; each returns the figure).

    plot_timeline(res)     the sock_ops callbacks of each subflow over time (one row per
                           subflow, one marker per callback; RTO_CB and RETRANS_CB stand out)
    plot_bytes(res)        bytes per path: into dut (wire) and acknowledged payload
"""

#: callbacks drawn, with their marker and color (the others: small grey dots)
STYLE = {"TCP_CONNECT_CB": ("o", "tab:blue"), "ACTIVE_ESTABLISHED_CB": ("s", "tab:green"),
         "PASSIVE_ESTABLISHED_CB": ("s", "tab:olive"), "STATE_CB": ("|", "tab:purple"),
         "RETRANS_CB": ("x", "tab:orange"), "RTO_CB": ("v", "tab:red"),
         "RTT_CB": (".", "0.75")}


def _ax(ax, size):
    if ax is None:              # no pyplot: a figure of its own, shown once (as its value)
        from matplotlib.figure import Figure
        fig = Figure(figsize=size)
        return fig, fig.add_subplot()
    return ax.figure, ax


def plot_timeline(res, ax=None):
    """One row per socket (grouped by connection), a marker per callback at its time."""
    from .timeline import group
    fig, ax = _ax(ax, (9, 3.2))
    events = res.events
    if not events:
        ax.set_title("no sock_ops events")
        return fig
    t0 = min(e["t_ns"] for e in events)
    conns, _others = group(events)
    rows = [s for c in conns for s in c.subflows]
    seen = set()
    for y, s in enumerate(rows):
        for e in s.events:
            marker, color = STYLE.get(e["op"], (".", "0.5"))
            label = e["op"] if e["op"] not in seen else None
            seen.add(e["op"])
            ax.plot((e["t_ns"] - t0) / 1e9, y, marker, color=color, label=label,
                    markersize=7 if e["op"] in ("RTO_CB", "RETRANS_CB") else 4)
    for t, what in getattr(res, "marks", []):
        ax.axvline((t - t0) / 1e9, color="k", lw=0.6, ls="--")
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{s.side} sf {s.subflow_id} {s.local}" for s in rows], fontsize=8)
    ax.set_xlabel("seconds since the first callback")
    ax.set_title("sock_ops callbacks per subflow")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def plot_bytes(res, ax=None):
    """Bars per path: bytes that arrived at dut, and payload the client's subflows had acked."""
    fig, ax = _ax(ax, (5, 3))
    doc = res.doc if hasattr(res, "doc") else res
    paths = sorted(doc["paths"], key=int)
    wire = [doc["paths"][p]["bytes"] / 1e6 for p in paths]
    payload = [doc["paths"][p]["payload"] / 1e6 for p in paths]
    x = range(len(paths))
    ax.bar([i - 0.2 for i in x], wire, 0.4, label="into dut (frames)")
    ax.bar([i + 0.2 for i in x], payload, 0.4, label="payload acked")
    ax.set_xticks(list(x))
    ax.set_xticklabels([f"path {p}\n{doc['paths'][p]['subflows']} subflow(s)" for p in paths])
    ax.set_ylabel("MB")
    ax.set_title(f"policy {doc['policy']}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
