"""Random TCP option lists for the differential tests (walker vs C, bulk vs per-frame, every hook
vs the walker): well-formed options of every kind the record carries, MPTCP subtypes with their
usual and unusual lengths, Linux's layouts (which the parser reads as words first), unknown
kinds, wrong lengths, and damage (lengths 0 and 1, lists cut inside an option). One
random.Random decides everything, so a failing seed reruns."""

import struct

MPTCP_LENGTHS = {0: (4, 12, 20, 22, 24), 1: (12, 12, 12, 16, 24, 13), 2: (4, 8, 12, 16, 20, 22, 26),
                 3: (8, 16, 10, 18, 30), 4: (4, 5, 6), 5: (3, 4), 6: (12,), 7: (12,), 8: (4,),
                 15: (3, 9)}


def _option(rnd):
    """One option (bytes), well-formed most of the time."""
    k = rnd.randrange(20)
    if k < 3:
        return b"\x01" * rnd.randint(1, 3)                            # NOPs
    if k == 3:
        return struct.pack(">BBH", 2, 4, rnd.randrange(65536))       # MSS
    if k == 4:
        return bytes([3, 3, rnd.randrange(256)])                      # WS (any shift)
    if k == 5:
        return b"\x04\x02"                                            # SACK_PERM
    if k == 6:
        n = rnd.randint(1, 4)
        return bytes([5, 2 + 8 * n]) + rnd.randbytes(8 * n)           # SACK
    if k == 7:
        return struct.pack(">BBII", 8, 10, rnd.getrandbits(32), rnd.getrandbits(32))
    if k == 8:                                                        # Linux's SYN
        return (struct.pack(">BBH", 2, 4, 1460) + b"\x04\x02" +
                struct.pack(">BBII", 8, 10, rnd.getrandbits(32), rnd.getrandbits(32)) +
                bytes([1, 3, 3, rnd.randrange(15)]))
    if k == 9:                                                        # NOP NOP TS
        return b"\x01\x01" + struct.pack(">BBII", 8, 10, rnd.getrandbits(32), 0)
    if k in (10, 11, 12, 13):                                         # MPTCP
        sub = rnd.choice(list(MPTCP_LENGTHS))
        n = rnd.choice(MPTCP_LENGTHS[sub])
        return bytes([30, n, sub << 4 | rnd.randrange(16)]) + rnd.randbytes(n - 3)
    if k == 14:                                                       # another kind
        n = rnd.randint(2, 10)
        return bytes([rnd.choice([19, 28, 29, 34, 253, 254, rnd.randrange(9, 256)]), n]) + \
            rnd.randbytes(n - 2)
    if k == 15:                                                       # a known kind, wrong length
        kind = rnd.choice([2, 3, 4, 5, 8, 30])
        n = rnd.randint(2, 12)
        return bytes([kind, n]) + rnd.randbytes(n - 2)
    if k == 16:
        return b"\x00" + rnd.randbytes(rnd.randint(0, 3))            # EOL (and what follows)
    if k == 17:
        return bytes([rnd.randrange(2, 256), rnd.choice([0, 1])])     # length 0 or 1
    if k == 18:
        return bytes([rnd.randrange(2, 256), rnd.randint(20, 255)])   # past the header
    return rnd.randbytes(rnd.randint(1, 6))                           # anything


def random_options(rnd):
    """TCP option bytes: a multiple of 4, at most 40 (a list longer than that is cut, which
    cuts an option short now and then)."""
    data = b"".join(_option(rnd) for _ in range(rnd.choice([1, 1, 2, 3, 4, 6, 10])))
    size = min(40, -(-len(data) // 4) * 4)
    if rnd.randrange(4) == 0:
        size = rnd.choice([4, 8, 12, 20, 40])
    return (data + rnd.choice([b"\x00", b"\x01"]) * 40)[:size]


def tcp_with_options(rnd, opts, payload=b""):
    """A TCP header (ports, flags random) carrying `opts`, then the payload."""
    return struct.pack(">HHIIBBHHH", rnd.randrange(65536), rnd.randrange(65536),
                       rnd.getrandbits(32), rnd.getrandbits(32), (5 + len(opts) // 4) << 4,
                       rnd.randrange(256), rnd.randrange(65536), 0, 0) + opts + payload


def frame_with_options(rnd):
    """Ethernet (sometimes a VLAN tag), IPv4 (sometimes with IP options) or IPv6, TCP with random
    options, a payload or none, sometimes Ethernet padding after the IP packet."""
    tcp = tcp_with_options(rnd, random_options(rnd),
                           rnd.randbytes(rnd.choice([0, 0, 1, 5, 40])))
    l2 = rnd.randbytes(12) + (b"\x81\x00" + rnd.randbytes(2) if rnd.randrange(4) == 0 else b"")
    if rnd.randrange(3):
        ipopts = b"\x01" * 4 * rnd.choice([0, 0, 1, 2])
        ip = struct.pack(">BBHHHBBH4s4s", 0x45 + len(ipopts) // 4, 0, 20 + len(ipopts) + len(tcp),
                         rnd.randrange(65536), 0x4000, 64, 6, 0, rnd.randbytes(4),
                         rnd.randbytes(4)) + ipopts
        frame = l2 + b"\x08\x00" + ip + tcp
    else:
        ip = struct.pack(">IHBB16s16s", 6 << 28, len(tcp), 6, 64, rnd.randbytes(16),
                         rnd.randbytes(16))
        frame = l2 + b"\x86\xdd" + ip + tcp
    if rnd.randrange(4) == 0:
        frame += rnd.randbytes(rnd.randint(1, 20))                    # padding / a trailer
    return frame
