"""The numbered assignments' cells (issue 15): a learner writes a whole eBPF program in C, from
a skeleton with TODOs; a checker in pktlab (pl.exercises.check_aN) judges it on the corpus.

Each lesson takes its assignments with `assignments("02", 1, 4)`: a heading, then per
assignment its task and hints (markdown) and the cell with the starting code and the check.
The starting code must compile and load (tests/test_assignments.py loads it through the
learner loader); the answers are in notebooks/solutions/aN_*.c, never here.
"""

from .cells import code, md

# --- the starting code ---------------------------------------------------------------------------

A1 = r"""
/* Assignment 1: how many frames of each IP protocol?
 *
 * For every frame whose EtherType (right after the two MAC addresses) is IPv4 and that holds
 * a whole 20-byte IPv4 header, add 1 to proto_count[protocol]: protocol is the IPv4 header's
 * protocol field. Nothing else is counted. Every frame goes on (XDP_PASS).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>	/* struct ethhdr, ETH_P_IP */
#include <linux/ip.h>		/* struct iphdr */

BPF_ARRAY(proto_count, u64, 256);	/* index: a protocol number; value: frames */

int count_protos(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	/* TODO 1: prove the whole Ethernet header is inside the frame before reading it */
	/* TODO 2: IPv4 frames only */
	/* TODO 3: the IPv4 header starts right after Ethernet: prove it fits too */
	/* TODO 4: add 1 to this protocol's counter */

	return XDP_PASS;
}
"""

A2 = r"""
/* Assignment 2: a one-port firewall at TC.
 *
 * Drop (TC_ACT_SHOT) every IPv4 TCP segment whose destination port is BLOCKED_PORT; every
 * other frame goes on (TC_ACT_OK).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>		/* IPPROTO_TCP */
#include <linux/ip.h>
#include <linux/pkt_cls.h>	/* TC_ACT_OK, TC_ACT_SHOT */
#include <linux/tcp.h>		/* struct tcphdr */

#define BLOCKED_PORT 80

int drop_port(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	/* TODO 1: Ethernet, bounds-checked; IPv4 only */
	/* TODO 2: the IPv4 header, bounds-checked; TCP only */
	/* TODO 3: where does the TCP header start? Not always 20 bytes after the IPv4 header's
	 *         start: its IHL field says (and an IHL below 5 is no header at all) */
	/* TODO 4: read the TCP header's destination port there (if the verifier refuses how
	 *         you read it, its explanation names another way) */
	/* TODO 5: drop the segment when it goes to BLOCKED_PORT */

	return TC_ACT_OK;
}
"""

A3 = r"""
/* Assignment 3: VXLAN, a header pktlab's parser does not know.
 *
 * VXLAN (RFC 7348) carries whole Ethernet frames inside UDP, sent to port 4789: outer
 * Ethernet, outer IPv4, UDP, the 8-byte VXLAN header below, then the inner Ethernet frame.
 * For every (untagged) IPv4 UDP frame to port VXLAN_PORT that carries a whole VXLAN header
 * and a whole inner Ethernet header whose EtherType is IPv4, add 1 to vxlan_ipv4[VNI]: VNI
 * is the VXLAN network identifier, as a number. Nothing else is counted. Every frame goes on
 * (XDP_PASS).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>		/* IPPROTO_UDP */
#include <linux/ip.h>
#include <linux/udp.h>		/* struct udphdr */

#define VXLAN_PORT 4789

struct vxlan_hdr {
	__u8 flags;		/* 0x08: the VNI is valid */
	__u8 reserved1[3];
	__u8 vni[3];		/* the VXLAN network identifier, most significant byte first */
	__u8 reserved2;
};

BPF_HASH(vxlan_ipv4, u32, u64, 1024);	/* key: a VNI; value: frames */

int count_vxlan(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	/* TODO 1: the outer Ethernet and IPv4 headers, bounds-checked; IPv4 and UDP only */
	/* TODO 2: the UDP header, where the outer IPv4 header's IHL puts it; VXLAN's port only */
	/* TODO 3: the VXLAN header right after UDP, then the inner Ethernet header right after
	 *         it: both whole, the inner EtherType IPv4 */
	/* TODO 4: the VNI as a number, then count */

	return XDP_PASS;
}
"""

A4 = r"""
/* Assignment 4: bounce it back.
 *
 * Every IPv4 frame (EtherType IPv4 right after the MACs) goes back out of the interface it
 * came in on, its destination and source MAC addresses swapped and every other byte as it
 * came. Every other frame goes on (XDP_PASS).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>	/* struct ethhdr, ETH_ALEN, ETH_P_IP */

int bounce(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	/* TODO 1: prove the Ethernet header is inside the frame before touching it */
	/* TODO 2: IPv4 frames only */
	/* TODO 3: swap eth->h_dest and eth->h_source (ETH_ALEN bytes each) */
	/* TODO 4: send it back where it came from */

	return XDP_PASS;
}
"""

A5 = r"""
/* Assignment 5: bytes per flow.
 *
 * For every IPv4 TCP or UDP packet, add its length (skb->len) to its flow's entry in
 * flow_bytes. A flow's key is struct flow below, its fields as they are in the packet
 * (network byte order), one flow per direction. Every frame goes on (TC_ACT_OK).
 * The map holds 1024 flows, and when it is full, a new flow must still get in.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>		/* IPPROTO_TCP, IPPROTO_UDP */
#include <linux/ip.h>
#include <linux/pkt_cls.h>

struct flow {			/* keep the field names: the checker reads them */
	__u32 saddr;
	__u32 daddr;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];		/* every byte of a key counts, these too */
};

/* TODO 1: a map that still takes a new flow when it is full (this one does not) */
BPF_HASH(flow_bytes, struct flow, u64, 1024);

int count_flows(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;

	/* TODO 2: Ethernet and IPv4, bounds-checked; TCP or UDP only */
	/* TODO 3: the two ports: TCP and UDP headers both start with them, wherever the IHL
	 *         puts that header */
	/* TODO 4: fill the key (from all zeros), then add skb->len to its entry; a flow seen for
	 *         the first time has no entry yet */

	return TC_ACT_OK;
}
"""

# --- what each assignment says -----------------------------------------------------------------

INTRO = """
## Assignments

Whole programs of your own, in C, from a skeleton with TODOs. Run the cell as it is first: the
skeleton compiles and loads (it does nothing yet), and the checker says what is missing. The
checker loads your program the way pktlab loads every learner's program (a restricted loader:
the verifier gives it no more privilege than a learner's program should have), runs it on
every frame of the bundled captures with `BPF_PROG_TEST_RUN`, and compares what it did with
what the frame is (the walker's record). It names the first frame that went wrong, what your
program did with it, and a hint; a refusal is shown at your own line, with the explainer's
reading of it. (A program written in a `%%bpf HOOK` cell of your own, as in lesson 02's "Your
own program", goes to the checker by the name the cell gave it: `pl.exercises.check_a1(
count_protos)`.)

*An assignment takes longer than an exercise: about 20 minutes each, on top of the lesson's
time above.*
"""

TEXT = {
    1: """
**Assignment 1: packets per IP protocol.** Count the IPv4 frames of each protocol (6 is TCP,
17 UDP, 1 ICMP...) in the array `proto_count`, indexed by the protocol number. The task is in
the comment on top of the starting code.

*Hints.* Everything the verifier wants is in the parser you read above: a header may be read
only after a comparison with `data_end` has proved that its last byte is inside the frame
(`(void *)(hdr + 1) > data_end`). Fields of more than one byte are big-endian in the frame,
while `ETH_P_IP` is a plain number: `bpf_htons()` turns one into the other. In bcc, a map's
`lookup(&key)` gives a pointer to the value, or NULL (the verifier makes you check, even for
an array); two CPUs may count at once, which is what `__sync_fetch_and_add()` is for. When the
checker names a frame, look at it with the line it gives you.
""",
    2: """
**Assignment 2: drop one TCP port.** A firewall that drops every IPv4 TCP segment to port 80
and lets everything else through, at TC (`TC_ACT_SHOT` drops, `TC_ACT_OK` lets go). The task
is in the comment on top of the starting code.

*Hints.* A TC program gets an `__sk_buff`, but reads the packet the same way as at XDP: from
`data` to `data_end`, every header proved inside first. The IPv4 header is not always 20
bytes: its IHL says how long it is, in 4-byte words, and `ipv4-options.pcap` has long ones.
Moving a packet pointer by a length read from the packet is something the verifier allows
only to a privileged program: if it refuses yours, read its explanation, which names the way
a learner's program reads at such an offset. Which port is the *destination*? The SYN of
`tcp-http.pcap` shows it (`pl.PacketView(pl.frames("tcp-http.pcap")[0])`).
""",
    3: """
**Assignment 3: a header the parser does not know.** pktlab's parser stops at UDP: it has no
idea that a VXLAN frame carries another whole Ethernet frame inside. Your program goes
further, into `tunnels.pcap`'s VXLAN frames: it counts, per VXLAN network, the frames that
carry IPv4. The task is in the comment on top of the starting code; the checker reads the
VXLAN header with scapy, which knows it.

*Hints.* Look at a VXLAN frame first: `pl.PacketView(pl.frames("tunnels.pcap")[0])` shows
where pktlab's walk ends, and `pl.side_by_side(pl.frames("tunnels.pcap")[0])` shows scapy
going on. Draw the layers with their lengths: the outer IPv4 header's length is its IHL, so
every header after it is at an offset known only when the program runs; the helper the
verifier's explanation names for such reads (lesson 03's assignment 2 met it) copies a header
into a variable of your program, `bpf_xdp_load_bytes()` at XDP. The VNI is three bytes, not
a C integer type: build the number from them, most significant first. `tunnels.pcap` holds
frames that must not be counted, too.
""",
    4: """
**Assignment 4: bounce it back.** Swap the MAC addresses of every IPv4 frame and send it back
out of the interface it came in on (`XDP_TX`). The checker test-runs your program on the
corpus for its verdicts, then does it for real: your program attached at XDP on the dut side
of a lab of the checker's own, frames sent from src, and what comes back to src compared
with what was sent.

*Hints.* Rewriting the packet is reading it and writing it: the same bounds check covers
both. The two addresses are 6-byte arrays (`ETH_ALEN`): one of them needs a temporary copy
while you swap (`__builtin_memcpy` with a constant length becomes plain loads and stores).
A frame sent back with its MACs as they came is addressed to the wrong host.
""",
    5: """
**Assignment 5: bytes per flow, in an LRU map.** Count the bytes of each flow (addresses,
ports, protocol) at TC, in a map that never stops taking new flows. The task is in the
comment on top of the starting code.

*Hints.* The starting code's map is a plain hash: when its 1024 entries are full it refuses
every new key, and a flow table meets new flows all the time; bcc's reference guide lists
map types that make room by themselves (`BPF_TABLE("<type>", key, value, name, entries)`
declares any of them). The checker fills the map with more flows than it holds, then looks
for the newest one. The ports sit at the same place in TCP and UDP headers, where the IHL puts
them (assignment 2 met that). A key is compared byte by byte, padding included: start it from
zeros (`struct flow key = {};`). The first packet of a flow finds no entry: bcc's
`lookup_or_try_init(&key, &zero)` makes one.
""",
}

NAMES = {1: "count_protos", 2: "drop_port", 3: "count_vxlan", 4: "bounce", 5: "count_flows"}
STARTING = {1: A1, 2: A2, 3: A3, 4: A4, 5: A5}


def assignment_cells(n):
    """Assignment n: its text and hints, then the cell with the starting code and the check."""
    src = STARTING[n].strip("\n")
    if '"""' in src or "\\" in src:
        raise ValueError(f"assignment {n}: the C cannot go in a raw triple-quoted string")
    return [md(TEXT[n]), code(f'a{n} = r"""\n{src}\n"""\n\npl.exercises.check_a{n}(a{n})')]


def assignments(*numbers):
    """The lesson's assignments section: the introduction, then each assignment's cells."""
    cells = [md(INTRO)]
    for n in numbers:
        cells += assignment_cells(n)
    return cells
