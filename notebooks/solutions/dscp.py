"""Lesson 01, exercise 1: the IPv4 DSCP of a frame, by casting (a solution).

    from pktlab import lessons as pl
    pl.exercises.check_dscp(dscp)
"""
from pktlab.packet import headers as H

VLAN_TPIDS = (H.ETH_P_8021Q, H.ETH_P_8021AD)
VLAN_MAX = 2            # like pktlab's parser (PL_VLAN_MAX): a third tag is not followed


def dscp(frame):
    """The IPv4 DSCP (TOS >> 2), or None without a complete IPv4 header."""
    off = H.Ethernet.size()
    if len(frame) < off:                            # bounds check before every cast
        return None
    proto = H.Ethernet.cast(frame, 0).proto
    for _ in range(VLAN_MAX):
        if proto not in VLAN_TPIDS:
            break
        if off + H.VLAN.size() > len(frame):
            return None
        proto = H.VLAN.cast(frame, off).encap_proto
        off += H.VLAN.size()
    if proto != H.ETH_P_IP or off + H.IPv4.size() > len(frame):
        return None
    return H.IPv4.cast(frame, off).tos >> 2         # DSCP: the top 6 bits of the TOS byte
