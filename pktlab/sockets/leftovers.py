"""What a socket experiment must not leave behind, looked for rather than assumed: processes
inside the lab's namespaces, our child processes still running, a clsact qdisc or a TC filter
on a lab interface (all before the lab is torn down), then the lab itself (after).

    left = inside(lab, procs=[server.proc])      # [] when everything of ours is gone
    ...lab closed...
    left += after(name)

Each entry is one line that says what is left and where.
"""

from ..lab import lab_processes, leftovers

#: clsact's two parents, ingress and egress (TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_{IN,E}GRESS))
_CLSACT_PARENTS = {"ingress": 0xFFFFFFF2, "egress": 0xFFFFFFF3}


def _tc_left(lab):
    from ..lab.nl import IPRoute
    out = []
    for side in ("src", "dut"):
        ns, ifname = lab.ns(side), lab.ifname(side)
        with IPRoute(netns=ns) as ipr:
            idx = ipr.link_lookup(ifname=ifname)
            if not idx:
                continue
            for q in ipr.get_qdiscs(index=idx[0]):
                if q.get_attr("TCA_KIND") == "clsact":
                    out.append(f"clsact qdisc on {ns}/{ifname}")
            for direction, parent in _CLSACT_PARENTS.items():
                try:
                    filters = ipr.get_filters(index=idx[0], parent=parent)
                except Exception:        # no clsact: no filters to list
                    filters = []
                if any(f.get_attr("TCA_KIND") for f in filters):
                    out.append(f"TC {direction} filter on {ns}/{ifname}")
    return out


def inside(lab, procs=()):
    """Leftovers in a lab that is still up: call it after everything was closed, before the
    lab is."""
    out = [f"process {p.pid} still running ({' '.join(map(str, p.args))[:80]})"
           for p in procs if p is not None and p.poll() is None]
    out += [f"process {p['pid']} in {p['ns']} ({p['cmd'][:80]})" for p in lab_processes(lab.state)]
    return out + _tc_left(lab)


def after(name):
    """Leftovers of a lab that was closed: its namespaces, its state file."""
    return leftovers(name)
