"""pktlab: a packet taken apart twice, in Python and live in the kernel.

The package is built in rooms, each importing only the rooms below it (tests/test_layout.py
checks it):

    cli                  the `pktlab` command
    lessons              the facade the notebooks import as `pl`, widgets, plots, exercises
    doctor               what works on this machine
    replay, bench        replaying captures through the hooks; what each hook costs
    sockets              the socket end: socket-aware firewalls, real flows, the belt
    mptcp                MPTCP over two or three paths: sock_ops, subflows, an eBPF path policy
    kernel               programs compiled, loaded, attached; BTF; record rings
    lab                  namespaces, veth, injection, child processes
    packet               bytes to records: headers, the walker, captures
    errors, progress, resources   used by everything

Nothing happens at import time.
"""
