/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * pktlab_parse.h - the one packet parser every hook runs (xdp, tc-ingress, tc-egress, kprobe,
 * and the socket end: cgroup-ingress, socket-filter, sk-skb, recv).
 *
 * Cursor style, after xdp-tutorial's common/parsing_helpers.h: each parse_<hdr>() takes the
 * cursor and an end pointer, checks `h + 1 > end` (or the header's real length) before touching
 * the header, advances the cursor, and returns the next protocol (>= 0, HOST byte order) or a
 * negative PL_ST_* status. pktlab/walker.py is the Python twin: same order of checks, same
 * statuses, same limits. If you change a rule here, change it there (tests/test_kernel_parse.py
 * runs both on the whole corpus and on random bytes).
 *
 * Two ends are in play once an IP header is parsed:
 *   data_end  the end of the bytes the hook can read; every access is checked against it, which
 *             is what the verifier insists on for packet pointers (the cursor's len is the
 *             same end as a number: data_end - data);
 *   ip_end    the end of the IP packet (total length / payload length), an offset from the
 *             frame's first byte. Headers after IP are checked against ip_end, so Ethernet
 *             padding never counts as L4 header or payload. ip_end <= len is established
 *             before it is used (else PL_ST_TOTLEN).
 *
 * The same source loads as root and through pktlab's learner loader (CAP_BPF and CAP_NET_ADMIN
 * only): see struct hdr_cursor and PL_NO_PERFMON below. A learner's program makes its cursor
 * with PL_CURSOR(ctx) and may call every parse_<hdr>() and pl_parse_ctx(ctx, &record).
 */
#ifndef PKTLAB_PARSE_H
#define PKTLAB_PARSE_H

#include "pktlab_record.h"

#define PL_ETH_P_IP 0x0800
#define PL_ETH_P_ARP 0x0806
#define PL_ETH_P_8021Q 0x8100
#define PL_ETH_P_8021AD 0x88A8
#define PL_ETH_P_IPV6 0x86DD

#define PL_IPPROTO_HOPOPTS 0
#define PL_IPPROTO_ICMP 1
#define PL_IPPROTO_TCP 6
#define PL_IPPROTO_UDP 17
#define PL_IPPROTO_ROUTING 43
#define PL_IPPROTO_FRAGMENT 44
#define PL_IPPROTO_AH 51
#define PL_IPPROTO_ICMPV6 58
#define PL_IPPROTO_DSTOPTS 60

/* TCP option kinds the record carries (RFC 9293, 7323, 2018, 8684) */
#define PL_TCPOPT_EOL 0
#define PL_TCPOPT_NOP 1
#define PL_TCPOPT_MSS 2
#define PL_TCPOPT_WSCALE 3
#define PL_TCPOPT_SACK_PERM 4
#define PL_TCPOPT_SACK 5
#define PL_TCPOPT_TIMESTAMP 8
#define PL_TCPOPT_MPTCP 30
#define PL_TCP_OPT_SPACE 40    /* option bytes at most: data offset 15, less the fixed 20 */
#define PL_TCP_OPT_MASK 63     /* a power of two less one, above PL_TCP_OPT_SPACE */

#ifndef PL_INLINE
#define PL_INLINE static __always_inline
#endif

/* Header layouts, declared here rather than taken from <linux/ip.h> & co. so that the
 * parser reads the same bytes on every kernel and its Python twin can mirror them exactly. */
struct pl_ethhdr {
	__u8 dst[6];
	__u8 src[6];
	__be16 proto;
};

struct pl_vlanhdr {
	__be16 tci;
	__be16 encap_proto;
};

struct pl_arphdr {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
};

struct pl_iphdr {
	__u8 ver_ihl;           /* version << 4 | ihl */
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag;            /* flags (3 bits) | offset in 8-byte units */
	__u8 ttl;
	__u8 protocol;
	__be16 check;
	__u8 saddr[4];
	__u8 daddr[4];
};

struct pl_ipv6hdr {
	__be32 ver_tc_flow;     /* version << 28 | traffic class | flow label */
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

struct pl_ipv6_opt {            /* the common start of hop-by-hop, routing, dest opts and AH */
	__u8 nexthdr;
	__u8 hdrlen;
	__u8 data[6];
};

struct pl_ipv6_frag {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag;            /* offset << 3 | M */
	__be32 ident;
};

struct pl_tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;          /* doff << 4 | reserved */
	__u8 flags;
	__be16 window;
	__be16 check;
	__be16 urg_ptr;
};

struct pl_udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__be16 check;
};

struct pl_icmphdr {             /* ICMP and ICMPv6 share the first 8 bytes' shape */
	__u8 type;
	__u8 code;
	__be16 check;
	__be16 id;
	__be16 seq;
};

/*
 * The cursor: where the next header starts, twice.
 *
 *   off  its offset from the frame's first byte: a number, always. The checks against lengths
 *        the packet gives (IHL, total length, doff, an extension header's length) compare
 *        numbers, and the record's offsets (payload_off, parse_end) are read off it.
 *   pos  a pointer to it, for the headers read in place: Ethernet, VLAN tags, ARP and the fixed
 *        IPv4/IPv6 headers, each checked against data_end first (`h + 1 > data_end`) and
 *        passed by adding its size, a constant.
 *
 * A header after a length the packet gives (the transport header after IHL, the IPv6
 * extension headers) is taken with pl_header(), which checks it against ip_end and the frame
 * and gives a pointer to its bytes: in place, where pos is moved by that length (pl_skip); or,
 * in a build for pktlab's learner loader (PL_NO_PERFMON, see below), a copy in the cursor.
 *
 * PL_NO_PERFMON: a program loaded with CAP_BPF and CAP_NET_ADMIN but without CAP_PERFMON
 * (pktlab's learner loader, pktlab/kernel/loader.py, which defines it) may neither subtract
 * two packet pointers ("pointer -= pointer prohibited") nor add a number it computed at run
 * time to one ("pointer arithmetic with it prohibited for !root"): the verifier's defences
 * against speculative reads. So there pos stops at the first run-time length (it is set to 0:
 * reading through it is refused, not wrong), and the bytes after it are copied by
 * bpf_skb_load_bytes / bpf_xdp_load_bytes, whose offset is a plain number. Such a cursor needs
 * the program's context: make it with PL_CURSOR(ctx), as every program may.
 */
struct hdr_cursor {
	void *pos;              /* the next header, read in place (see above) */
	void *start;            /* the frame's first byte */
	__u32 off;              /* the next header's offset from start */
	__u32 len;              /* bytes readable from start (off and lengths are checked against it) */
#ifdef PL_NO_PERFMON
	void *ctx;              /* the program's struct xdp_md or struct __sk_buff */
	union {                 /* pl_header()'s copies: the transport header ... */
		struct pl_tcphdr tcp;
		struct pl_udphdr udp;
		struct pl_icmphdr icmp;
	} l4;
	union {                 /* ... and the IPv6 extension header being walked */
		struct pl_ipv6_opt opt;
		struct pl_ipv6_frag frag;
	} ext;
#endif
};

#ifndef PKTLAB_USERSPACE
/*
 * PL_CURSOR(ctx): a cursor at the first byte of the frame an XDP program (struct xdp_md *ctx)
 * or a TC program (struct __sk_buff *skb) is handed:
 *
 *	struct hdr_cursor nh = PL_CURSOR(ctx);
 *
 * len is the frame's readable length: data_end - data as root; under PL_NO_PERFMON, where
 * that subtraction is refused, what the helpers read: bpf_xdp_get_buff_len() or skb->len
 * (more than data_end - data only for a TC frame whose bytes are not all in the linear part).
 */
#ifndef PL_NO_PERFMON
#define PL_CURSOR(x)                                                                      \
	{                                                                                 \
		.pos = (void *)(long)(x)->data, .start = (void *)(long)(x)->data,         \
		.len = (void *)(long)(x)->data_end - (void *)(long)(x)->data,             \
	}
#else
/*
 * The helpers that read the frame for a learner build: XDP's when the program is an XDP
 * program (the learner loader defines PL_PROG_XDP then), else the skb's (TC, socket filter,
 * cgroup_skb). Chosen here, not by a test at run time: the verifier would also walk the
 * other helper (a mispredicted branch) and refuse it to this program type.
 */
#ifdef PL_PROG_XDP
#define PL_CTX_LEN(x) bpf_xdp_get_buff_len((void *)(x))
#define PL_LOAD_BYTES bpf_xdp_load_bytes
#else
#define PL_CTX_LEN(x) (((struct __sk_buff *)(void *)(x))->len)
#define PL_LOAD_BYTES bpf_skb_load_bytes
#endif
#define PL_CURSOR(x)                                                                      \
	{                                                                                 \
		.pos = (void *)(long)(x)->data, .start = (void *)(long)(x)->data,         \
		.len = PL_CTX_LEN(x), .ctx = (void *)(x),                                 \
	}

/* n bytes of the frame from offset off to `to` (0, or a negative error) */
PL_INLINE long pl_load_bytes(struct hdr_cursor *nh, __u32 off, void *to, __u32 n)
{
	return PL_LOAD_BYTES(nh->ctx, off, to, n);
}
#endif
#endif /* !PKTLAB_USERSPACE */

#ifndef PL_NO_PERFMON
/* A cursor over bytes in memory, data..data_end: a copy in a map value (the hooks of
 * pktlab_copy.h) or, in userspace, a buffer. */
PL_INLINE struct hdr_cursor pl_cursor_mem(void *data, void *data_end)
{
	struct hdr_cursor nh = { .pos = data, .start = data, .len = data_end - data };

	return nh;
}
#endif

/*
 * PL_CLAMP(nh): after a move by a run-time length. For packet pointers (XDP, TC) the verifier
 * learns the cursor's range from the `> data_end` compares, so this is nothing. The hooks that
 * parse a copy of the frame in a map value (pktlab_copy.h), where pointer compares teach the
 * verifier nothing, define PL_CLAMP to mask the offset before pos is made of it, so every
 * later access is provably inside the buffer (the mask never changes a cursor that the
 * compares already kept in range).
 */
#ifndef PL_CLAMP
#define PL_CLAMP(nh) do { } while (0)
#endif

/* The cursor moves on by n bytes, a length the packet gave. */
PL_INLINE void pl_skip(struct hdr_cursor *nh, __u32 n)
{
	nh->off += n;
#ifdef PL_NO_PERFMON
	nh->pos = 0;            /* no packet pointer past a run-time length (see above) */
#else
	nh->pos += n;
	PL_CLAMP(nh);
#endif
}

/*
 * The n bytes at the cursor, inside ip_end and the frame: a pointer to them, or 0. In place
 * (checked against data_end), or under PL_NO_PERFMON copied to `copy` (n bytes of the
 * caller's, unused otherwise). The cursor does not move: pl_skip() does, once the header has
 * said how long it is. Also for a learner's own headers (GRE, VXLAN, ...).
 */
PL_INLINE void *pl_header(struct hdr_cursor *nh, void *data_end, __u32 ip_end, void *copy,
			  __u32 n)
{
	if (nh->off + n > ip_end)
		return 0;
#ifdef PL_NO_PERFMON
	if (nh->off + n > nh->len || pl_load_bytes(nh, nh->off, copy, n))
		return 0;
	return copy;
#else
	if (nh->pos + n > data_end)
		return 0;
	return nh->pos;
#endif
}

/* Where pl_header() may copy a header to: the cursor's own space (PL_NO_PERFMON only). */
#ifdef PL_NO_PERFMON
#define PL_COPY(nh, field) ((void *)&(nh)->field)
#else
#define PL_COPY(nh, field) ((void *)0)
#endif

/* The parse has read the frame up to offset `end` (one past the last byte read): the record's
 * parse_end. Headers are read front to back, so the last call is the high-water mark; the
 * fingerprint covers at least these bytes, which is what makes it an exact identity. */
#define PL_SEEN(r, end) ((r)->parse_end = (end))

/*
 * The cursor's offset, for what the parse stores in the record (parse_end, payload_off). As
 * root it is pos - start: the same number as off, but one the verifier does not know. That
 * matters to a program that keeps its record on its stack, where the verifier tracks every
 * byte: with a known offset stored there it would check the payload peek, the option walk and
 * the fingerprint once per offset the headers can add up to (E2BIG), with an unknown one, once.
 */
#ifndef PL_NO_PERFMON
#define PL_OFF(nh) ((__u32)((nh)->pos - (nh)->start))
#else
#define PL_OFF(nh) ((nh)->off)
#endif

/* Returns the EtherType (host order) that follows the Ethernet header. */
PL_INLINE int parse_ethhdr(struct hdr_cursor *nh, void *data_end, struct pl_ethhdr **out)
{
	struct pl_ethhdr *eth = nh->pos;

	if ((void *)(eth + 1) > data_end)
		return -PL_ST_TRUNCATED;
	nh->pos = eth + 1;
	nh->off += sizeof(*eth);
	*out = eth;
	return bpf_ntohs(eth->proto);
}

/* Returns the encapsulated EtherType (host order). */
PL_INLINE int parse_vlanhdr(struct hdr_cursor *nh, void *data_end, struct pl_vlanhdr **out)
{
	struct pl_vlanhdr *vh = nh->pos;

	if ((void *)(vh + 1) > data_end)
		return -PL_ST_TRUNCATED;
	nh->pos = vh + 1;
	nh->off += sizeof(*vh);
	*out = vh;
	return bpf_ntohs(vh->encap_proto);
}

/* Returns the ARP opcode (host order). */
PL_INLINE int parse_arphdr(struct hdr_cursor *nh, void *data_end, struct pl_arphdr **out)
{
	struct pl_arphdr *ah = nh->pos;

	if ((void *)(ah + 1) > data_end)
		return -PL_ST_TRUNCATED;
	nh->pos = ah + 1;
	nh->off += sizeof(*ah);
	*out = ah;
	return bpf_ntohs(ah->op);
}

/*
 * Returns the IP protocol. On success *ip_end is the end of the IP packet (an offset, like
 * nh->off). The checks come in the order the walker uses: fixed header, version, IHL >= 5,
 * IHL within frame, total length.
 */
PL_INLINE int parse_iphdr(struct hdr_cursor *nh, void *data_end, struct pl_iphdr **out,
			  __u32 *ip_end)
{
	struct pl_iphdr *iph = nh->pos;
	int hdrsize, tot;

	if ((void *)(iph + 1) > data_end)
		return -PL_ST_TRUNCATED;
	*out = iph;
	if ((iph->ver_ihl >> 4) != 4)
		return -PL_ST_BAD_VERSION;
	hdrsize = (iph->ver_ihl & 0x0f) * 4;
	/* IHL is only a length once it is at least the fixed header (else the cursor could go
	 * backwards into the Ethernet header, or stall). */
	if (hdrsize < (int)sizeof(*iph))
		return -PL_ST_IHL_LT5;
	if (nh->off + hdrsize > nh->len)
		return -PL_ST_IHL_BEYOND;
	tot = bpf_ntohs(iph->tot_len);
	if (tot < hdrsize || nh->off + tot > nh->len)
		return -PL_ST_TOTLEN;
	*ip_end = nh->off + tot;
	pl_skip(nh, hdrsize);
	return iph->protocol;
}

/* Returns the IPv6 next header; *ip_end as above. */
PL_INLINE int parse_ip6hdr(struct hdr_cursor *nh, void *data_end, struct pl_ipv6hdr **out,
			   __u32 *ip_end)
{
	struct pl_ipv6hdr *ip6h = nh->pos;
	int tot;

	if ((void *)(ip6h + 1) > data_end)
		return -PL_ST_TRUNCATED;
	*out = ip6h;
	if ((bpf_ntohl(ip6h->ver_tc_flow) >> 28) != 6)
		return -PL_ST_BAD_VERSION;
	tot = (int)sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
	if (nh->off + tot > nh->len)
		return -PL_ST_TOTLEN;
	*ip_end = nh->off + tot;
	nh->pos = ip6h + 1;
	nh->off += sizeof(*ip6h);
	return ip6h->nexthdr;
}

PL_INLINE int pl_is_ipv6_ext(int proto)
{
	return proto == PL_IPPROTO_HOPOPTS || proto == PL_IPPROTO_ROUTING ||
	       proto == PL_IPPROTO_FRAGMENT || proto == PL_IPPROTO_DSTOPTS ||
	       proto == PL_IPPROTO_AH;
}

/*
 * Walks at most PL_IPV6_EXT_MAX extension headers; returns the upper-layer protocol.
 * A fragment header with a non-zero offset ends the walk with PL_ST_FRAG_NONFIRST.
 */
PL_INLINE int parse_ip6_ext(struct hdr_cursor *nh, void *data_end, __u32 ip_end, int nexthdr,
			    struct pl_record *r)
{
#pragma unroll
	for (int i = 0; i < PL_IPV6_EXT_MAX; i++) {
		struct pl_ipv6_opt *opt;
		int len;

		if (!pl_is_ipv6_ext(nexthdr))
			return nexthdr;
		r->layer = PL_L_IPV6_EXT;
		/* The minimum (8 bytes) first: hdrlen is only read once it is in the packet. */
		opt = pl_header(nh, data_end, ip_end, PL_COPY(nh, ext), sizeof(*opt));
		if (!opt)
			return -PL_ST_TRUNCATED;
		PL_SEEN(r, PL_OFF(nh) + sizeof(*opt));
		if (nexthdr == PL_IPPROTO_FRAGMENT) {
			struct pl_ipv6_frag *fh = (void *)opt;
			__u16 f = bpf_ntohs(fh->frag);

			r->flags |= PL_F_IPV6_FRAG | PL_F_FRAGMENT;
			if (f & 1)
				r->flags |= PL_F_IP_MF;
			r->frag_off = f & 0xfff8;
			r->frag_id = bpf_ntohl(fh->ident);
			len = 8;
		} else if (nexthdr == PL_IPPROTO_AH) {
			len = (opt->hdrlen + 2) * 4;
		} else {
			len = (opt->hdrlen + 1) * 8;
		}
		if (nh->off + len > ip_end || nh->off + len > nh->len)
			return -PL_ST_TRUNCATED;
		nexthdr = opt->nexthdr;
		pl_skip(nh, len);
		r->ipv6_ext_count++;
		r->l4_proto = nexthdr;
		if (r->frag_off)
			return -PL_ST_FRAG_NONFIRST;
	}
	if (pl_is_ipv6_ext(nexthdr))
		return -PL_ST_EXT_TOO_MANY;
	return nexthdr;
}

/* Returns the number of TCP header bytes. */
PL_INLINE int parse_tcphdr(struct hdr_cursor *nh, void *data_end, __u32 ip_end,
			   struct pl_tcphdr **out)
{
	struct pl_tcphdr *th = pl_header(nh, data_end, ip_end, PL_COPY(nh, l4.tcp), sizeof(*th));
	int len;

	if (!th)
		return -PL_ST_TRUNCATED;
	*out = th;
	len = (th->doff_res >> 4) * 4;
	/* doff is only a length once it covers the fixed header. */
	if (len < (int)sizeof(*th))
		return -PL_ST_DOFF_LT5;
	if (nh->off + len > ip_end || nh->off + len > nh->len)
		return -PL_ST_DOFF_BEYOND;
	pl_skip(nh, len);
	return len;
}

PL_INLINE int parse_udphdr(struct hdr_cursor *nh, void *data_end, __u32 ip_end,
			   struct pl_udphdr **out)
{
	struct pl_udphdr *uh = pl_header(nh, data_end, ip_end, PL_COPY(nh, l4.udp), sizeof(*uh));

	if (!uh)
		return -PL_ST_TRUNCATED;
	pl_skip(nh, sizeof(*uh));
	*out = uh;
	return sizeof(*uh);
}

PL_INLINE int parse_icmphdr(struct hdr_cursor *nh, void *data_end, __u32 ip_end,
			    struct pl_icmphdr **out)
{
	struct pl_icmphdr *ih = pl_header(nh, data_end, ip_end, PL_COPY(nh, l4.icmp),
					  sizeof(*ih));

	if (!ih)
		return -PL_ST_TRUNCATED;
	pl_skip(nh, sizeof(*ih));
	*out = ih;
	return sizeof(*ih);
}

/* x &= m, where LLVM cannot drop it: it knows the value is below m already (from a compare
 * the verifier of an older kernel does not learn from), the verifier does not. */
#define PL_STR(x) #x
#define PL_XSTR(x) PL_STR(x)
#ifndef PKTLAB_USERSPACE
#define PL_MASK(x, m) asm volatile("%0 &= " PL_XSTR(m) : "+r"(x))
#else
#define PL_MASK(x, m) ((x) &= (m))
#endif

#define PL_PEEK_OFF_MAX 0xff00

#define PL_FOURCC(a, b, c, d) ((__u32)(a) << 24 | (__u32)(b) << 16 | (__u32)(c) << 8 | (__u32)(d))

/* The L7 guess, from the copied payload bytes only (so both sides see the same input). */
PL_INLINE __u8 pl_guess_l7(const struct pl_record *r)
{
	__u32 w;

	if (r->payload_len >= 4 && r->l4_proto == PL_IPPROTO_TCP) {
		w = PL_FOURCC(r->payload[0], r->payload[1], r->payload[2], r->payload[3]);
		if (w == PL_FOURCC('G', 'E', 'T', ' ') || w == PL_FOURCC('P', 'O', 'S', 'T') ||
		    w == PL_FOURCC('P', 'U', 'T', ' ') || w == PL_FOURCC('H', 'E', 'A', 'D') ||
		    w == PL_FOURCC('D', 'E', 'L', 'E') || w == PL_FOURCC('O', 'P', 'T', 'I') ||
		    w == PL_FOURCC('P', 'A', 'T', 'C') || w == PL_FOURCC('C', 'O', 'N', 'N') ||
		    w == PL_FOURCC('T', 'R', 'A', 'C'))
			return PL_L7_HTTP_REQUEST;
		if (w == PL_FOURCC('H', 'T', 'T', 'P'))
			return PL_L7_HTTP_RESPONSE;
	}
	if (r->payload_len >= 3 && r->l4_proto == PL_IPPROTO_TCP && r->payload[0] == 0x16 &&
	    r->payload[1] == 0x03 && r->payload[2] <= 0x04)
		return PL_L7_TLS_HANDSHAKE;
	if (r->payload_len >= 12 && r->l4_proto == PL_IPPROTO_UDP &&
	    (r->sport == 53 || r->dport == 53 || r->sport == 5353 || r->dport == 5353))
		return PL_L7_DNS;
	return PL_L7_NONE;
}

#ifndef PL_NO_PERFMON
/* A pointer to offset `off` of the frame (off checked by the caller), masked in a copy. */
PL_INLINE void *pl_at(struct hdr_cursor *nh, __u32 off)
{
	struct hdr_cursor c = { .start = nh->start, .off = off };

	c.pos = c.start + off;
	PL_CLAMP(&c);
	return c.pos;
}
#endif

/*
 * Copies the first payload bytes; the fast path is one bounds check for all PL_PAYLOAD_PEEK.
 * The payload's start is read back from the record (volatile: from memory), not taken from the
 * cursor: the verifier then sees the same unknown offset on every path that got here, whatever
 * headers came before, and checks this code once instead of once per header combination
 * (VLAN tags x IP versions x extension headers x L4 would otherwise exhaust its budget).
 * Under PL_NO_PERFMON one helper call copies the same bytes: min(PL_PAYLOAD_PEEK, payload_len,
 * what the frame has from there).
 */
PL_INLINE void pl_peek_payload(struct pl_record *r, struct hdr_cursor *nh, void *data_end)
{
	__u32 off = *(volatile __u16 *)&r->payload_off;
#ifdef PL_NO_PERFMON
	__u64 n = r->payload_len;

	if (off > PL_PEEK_OFF_MAX || off >= nh->len)
		return;
	if (n > nh->len - off)
		n = nh->len - off;
	if (n > PL_PAYLOAD_PEEK)
		n = PL_PAYLOAD_PEEK;
	PL_MASK(n, 63);         /* the helper's size: provably 1 to PL_PAYLOAD_PEEK */
	if (n < 1 || n > PL_PAYLOAD_PEEK || pl_load_bytes(nh, off, r->payload, n))
		return;
	r->parse_end = off + n;
#else
	__u8 *p;

	/* The verifier learns nothing from a bounds check on a packet pointer whose offset might
	 * exceed 64 KiB minus the access; no real frame puts its payload this far in. */
	if (off > PL_PEEK_OFF_MAX)
		return;
	p = pl_at(nh, off);
	if ((void *)(p + PL_PAYLOAD_PEEK) <= data_end && r->payload_len >= PL_PAYLOAD_PEEK) {
		__builtin_memcpy(r->payload, p, PL_PAYLOAD_PEEK);
		r->parse_end = off + PL_PAYLOAD_PEEK;
		return;
	}
	int i;
#pragma unroll
	for (i = 0; i < PL_PAYLOAD_PEEK; i++) {
		if (i >= r->payload_len || (void *)(p + i + 1) > data_end)
			break;
		r->payload[i] = p[i];
	}
	if (i)
		r->parse_end = off + i;
#endif
}

/*
 * The options after the fixed TCP header, once the whole parse is done: pl_parse_at() calls
 * this last. Fills the record's tcp_* option fields, the mptcp_* fields and tcp_opt_flags
 * (pktlab_record.h PL_TCPO_*), nothing else: a bad option list is a flag, not a status (the
 * packet itself is fine: its data offset is).
 *
 * Where the options are is read back from the record (volatile: from memory), as in
 * pl_peek_payload, and the walk comes after everything else: the verifier then reaches it in
 * one state whatever headers came before (VLAN tags x IP versions x IHL x extension headers),
 * and checks it once. The options end where the payload starts; parse_tcphdr() checked that
 * this is inside ip_end and data_end, and the parse counted those bytes read (PL_SEEN).
 *
 * First Linux's own layouts, a word at a time (Linux's tcp_fast_parse_options reads its
 * timestamps so): a segment's NOP NOP TS, a SYN's MSS, SACK_PERM TS, NOP WS. Walking those
 * one option at a time cost 15-20 ns for a SYN here (the bench's 3x limit had 5% left); as
 * words, about nothing. Then the walk, from where they ended (or from the start): one option
 * per iteration, PL_TCP_OPT_SPACE iterations at most (each takes a byte at least, so the bound
 * never cuts a walk short). EOL ends the walk; NOP is one byte; any other kind has a length
 * byte, and a length below 2, missing, or running past the options ends the walk with
 * PL_TCPO_BAD. Both ways give the same record (the words are the walk's own steps).
 *
 * For the verifier: the offset is a scalar, masked at the end of every iteration, so every path
 * through the body reaches the next iteration in one state (a pointer advanced by p[1] makes
 * the verifier walk each path apart: 3^n states, E2BIG); nothing the loop keeps in a register
 * is branched on (a branch on a known value makes the verifier track every value apart); every
 * read has its own bounds check in an `if` of its own (in one && chain LLVM may load first).
 * The checks never fail: the options are inside data_end.
 */
PL_INLINE void parse_tcp_options(struct pl_record *r, struct hdr_cursor *nh, void *data_end)
{
	__u32 doff = *(volatile __u8 *)&r->tcp_doff;
	__u64 off = 0, len, flen, start;   /* 64-bit: the mask is BPF assembly on a whole register */
	__u32 flags = 0, w, z;
	__u8 *opts, *p;
#ifndef PL_NO_PERFMON
/* in place: every read checked against data_end; the walk's position is off, from 0 to len */
#define PL_OPT_SHORT(p, k) ((void *)((p) + (k)) > data_end)
#define PL_OPT_BE32(q) bpf_ntohl(*(__be32 *)(q))
#define PL_OPT_END() (off >= len)
#define PL_OPT_LEFT_LT(n) (off + (n) > len)
#define PL_OPT_NEXT(n) do { off += (n); PL_MASK(off, PL_TCP_OPT_MASK); } while (0)
#else
	/*
	 * Under PL_NO_PERFMON the bytes at hand are a copy: the first words, then each option's
	 * first bytes (bpf_*_load_bytes). Every read is checked against `have`, the bytes copied,
	 * as it is against data_end in place. The walk's position is rem, the option bytes left,
	 * kept apart from len and start, which the walk then never compares. Why: the verifier
	 * also walks what a mispredicted compare could do, with the registers it compared made
	 * unknown; a register the walk keeps, made unknown, would make that walk's states unlike
	 * every other, and each would go on to the end alone. rem is made 0 to 63 to the verifier
	 * after every option (XORed with z, a zero it cannot see, and masked), so all paths meet
	 * there; the fast path compares flen, a copy of len that dies there.
	 */
	__u8 win[24] = {};
	__u64 have, rem;
#define PL_OPT_SHORT(p, k) ((k) > have)
	/* a 32-bit field at an odd place in the copy: the verifier reads the stack only aligned */
#define PL_OPT_BE32(q) ((__u32)(q)[0] << 24 | (__u32)(q)[1] << 16 | (__u32)(q)[2] << 8 | (q)[3])
#define PL_OPT_END() (rem == 0)
#define PL_OPT_LEFT_LT(n) ((n) > rem)
#define PL_OPT_NEXT(n) do { rem = (rem - (n)) ^ z; PL_MASK(rem, PL_TCP_OPT_MASK); } while (0)
#endif

	if (doff <= 5)
		return;
	len = (doff & 0x0f) * 4 - sizeof(struct pl_tcphdr);
	flen = len;
	start = *(volatile __u16 *)&r->payload_off - len;
	if (start > PL_PEEK_OFF_MAX)
		return;
#ifdef PL_NO_PERFMON
	asm volatile("" : "+r"(flen));
	have = flen < 20 ? flen : 20;
	PL_MASK(have, 31);
	if (have < 1 || have > 20 || pl_load_bytes(nh, start, win, have))
		goto done;
	opts = win;
#else
	opts = pl_at(nh, start);
#endif

	if (PL_OPT_SHORT(opts, 4))
		goto done;
	w = bpf_ntohl(*(__be32 *)opts);
	if (w == 0x0101080a && flen >= 12) {                /* NOP NOP TS */
		if (PL_OPT_SHORT(opts, 12))
			goto done;
		r->tcp_ts_val = bpf_ntohl(*(__be32 *)(opts + 4));
		r->tcp_ts_ecr = bpf_ntohl(*(__be32 *)(opts + 8));
		flags = PL_TCPO_TIMESTAMP;
		off = 12;
	} else if ((w >> 16) == 0x0204) {                    /* MSS */
		r->tcp_mss = w & 0xffff;
		flags = PL_TCPO_MSS;
		off = 4;
		if (flen >= 16) {
			if (PL_OPT_SHORT(opts, 16))
				goto done;
			if (bpf_ntohl(*(__be32 *)(opts + 4)) == 0x0402080a) {   /* SACK_PERM TS */
				r->tcp_ts_val = bpf_ntohl(*(__be32 *)(opts + 8));
				r->tcp_ts_ecr = bpf_ntohl(*(__be32 *)(opts + 12));
				flags |= PL_TCPO_SACK_PERM | PL_TCPO_TIMESTAMP;
				off = 16;
				if (flen >= 20) {
					if (PL_OPT_SHORT(opts, 20))
						goto done;
					w = bpf_ntohl(*(__be32 *)(opts + 16));
					if ((w >> 8) == 0x010303) {              /* NOP WS */
						r->tcp_wscale = w & 0xff;
						flags |= PL_TCPO_WSCALE;
						off = 20;
					}
				}
			}
		}
	}
#ifdef PL_NO_PERFMON
	rem = len - off;
	z = *(volatile __u8 *)&r->tcp_doff ^ doff;      /* a zero, as at `done` below */
#endif

#ifndef PL_NO_PERFMON
	for (int i = 0; i < PL_TCP_OPT_SPACE; i++) {
#else
	/* Unrolled: no loop. In a loop the verifier also walks what a mispredicted compare of
	 * the counter could do, with the counter made unknown, and each such walk spawns the
	 * next ("The sequence of 8193 jumps is too complex"); unrolled, every walk ends where
	 * the copies do. (Nested: LLVM unrolls a loop with early exits only up to 8.) */
#pragma unroll
	for (int j = 0; j < PL_TCP_OPT_SPACE / 8; j++)
#pragma unroll
	for (int i = 0; i < 8; i++) {
#endif
		__u32 kind, olen;

#ifdef PL_NO_PERFMON
		asm volatile("" : "+r"(rem));   /* one register, compared as itself */
#endif
		if (PL_OPT_END())
			goto done;
#ifdef PL_NO_PERFMON
		have = rem < 10 ? rem : 10;
		PL_MASK(have, 15);
		if (have < 1 || have > 10 || pl_load_bytes(nh, start + len - rem, win, have))
			goto done;
		p = win;
#else
		p = opts + off;
#endif
		if (PL_OPT_SHORT(p, 1))
			goto done;
		kind = p[0];
		if (kind == PL_TCPOPT_EOL)
			goto done;
		if (kind == PL_TCPOPT_NOP) {
			PL_OPT_NEXT(1);
			continue;
		}
		/* the length byte must be an option byte too: else it is not read at all */
		if (PL_OPT_LEFT_LT(2)) {
			flags |= PL_TCPO_BAD;
			goto done;
		}
		if (PL_OPT_SHORT(p, 2))
			goto done;
		olen = p[1];
		if (olen < 2 || PL_OPT_LEFT_LT(olen)) {
			flags |= PL_TCPO_BAD;
			goto done;
		}
		if (kind == PL_TCPOPT_TIMESTAMP && olen == 10) {
			if (PL_OPT_SHORT(p, 10))
				goto done;
			r->tcp_ts_val = PL_OPT_BE32(p + 2);
			r->tcp_ts_ecr = PL_OPT_BE32(p + 6);
			flags |= PL_TCPO_TIMESTAMP;
		} else if (kind == PL_TCPOPT_MSS && olen == 4) {
			if (PL_OPT_SHORT(p, 4))
				goto done;
			r->tcp_mss = bpf_ntohs(*(__be16 *)(p + 2));
			flags |= PL_TCPO_MSS;
		} else if (kind == PL_TCPOPT_WSCALE && olen == 3) {
			if (PL_OPT_SHORT(p, 3))
				goto done;
			r->tcp_wscale = p[2];
			flags |= PL_TCPO_WSCALE;
		} else if (kind == PL_TCPOPT_SACK_PERM && olen == 2) {
			flags |= PL_TCPO_SACK_PERM;
		} else if (kind == PL_TCPOPT_SACK && olen >= 10 && (olen & 7) == 2) {
			r->tcp_sack_blocks = olen >> 3;
			flags |= PL_TCPO_SACK;
		} else if (kind == PL_TCPOPT_MPTCP && olen >= 3) {
			__u32 sub;

			if (PL_OPT_SHORT(p, 3))
				goto done;
			sub = p[2] >> 4;
			/* the first one: asked of the record, not of `flags` (see above) */
			if (!r->mptcp_subtypes)
				r->mptcp_subtype = sub;
			r->mptcp_subtypes |= 1U << sub;
			flags |= PL_TCPO_MPTCP;
			if (sub == PL_MPTCP_MP_JOIN && olen == 12) {
				if (PL_OPT_SHORT(p, 8))
					goto done;
				r->mptcp_token = PL_OPT_BE32(p + 4);
			}
		} else {
			flags |= PL_TCPO_OTHER;
		}
		PL_OPT_NEXT(olen);
	}
done:
	/* `flags` is built of constants: a program that keeps its record on the stack and then
	 * branches on tcp_opt_flags would have the verifier track each combination back through
	 * the walk (E2BIG). XORed with a zero it cannot see (the data offset read twice, the
	 * loads unrelated to it), the flags are opaque to it; records in maps are opaque anyway. */
	z = *(volatile __u8 *)&r->tcp_doff ^ doff;
	r->tcp_opt_flags = flags ^ (z | z << 4);
#undef PL_OPT_SHORT
#undef PL_OPT_BE32
#undef PL_OPT_END
#undef PL_OPT_LEFT_LT
#undef PL_OPT_NEXT
}

/*
 * The fingerprint (pktlab_record.h): FNV-1a over the first
 * min(readable, round_up_8(max(PL_HASH_BYTES, parse_end)), PL_HASH_MAX) bytes in 8-byte words,
 * then single bytes when the frame ends inside a word, then the length. Called after the parse,
 * with parse_end read back from the record (so the verifier sees one unknown bound whatever
 * path the parse took, and checks the loop once).
 */
PL_INLINE __u64 pl_fingerprint(void *data, void *data_end, __u32 len, __u32 parse_end)
{
	__u64 h = PL_FNV_OFFSET;
	__u8 *p = data;
	/* words after the first PL_HASH_BYTES: the clamp and the mask give the verifier a hard
	 * bound on the loop below, which LLVM turns into a down-counter */
	__u64 extra = parse_end > PL_HASH_BYTES ? (parse_end + 7) / 8 - PL_HASH_BYTES / 8 : 0;

	if (extra > (PL_HASH_MAX - PL_HASH_BYTES) / 8)
		extra = (PL_HASH_MAX - PL_HASH_BYTES) / 8;
#ifndef PKTLAB_USERSPACE
	asm volatile("%0 &= 0xff" : "+r"(extra));	/* BPF assembly: the kernel build only */
#else
	extra &= 0xff;
#endif

	/* the common prefix unrolled: no loop state for the verifier, no branch per word */
#pragma unroll
	for (int i = 0; i < PL_HASH_BYTES / 8; i++) {
		if ((void *)(p + 8) > data_end)
			goto tail;
		h ^= *(__u64 *)p;   /* x86-64 and arm64 BPF: little-endian loads */
		h *= PL_FNV_PRIME;
		p += 8;
	}
#ifndef PL_NO_PERFMON
	/* the rest of what the parse read: a bounded loop (the verifier walks each iteration) */
	for (__u64 i = 0; i < extra; i++) {   /* 64-bit: no zero-extension between the
						* counter the verifier bounds and the one
						* it tests */
		/* p opaque to LLVM: else it folds the bounds checks into a word count computed
		 * as data_end - p, which the verifier cannot follow */
		asm volatile("" : "+r"(p));
		if ((void *)(p + 8) > data_end)
			goto tail;
		h ^= *(__u64 *)p;
		h *= PL_FNV_PRIME;
		p += 8;
	}
#else
	/* The same words, unrolled: no loop. Without CAP_PERFMON the verifier also walks the
	 * paths a mispredicted branch could take, with the register it compared made unknown:
	 * in a loop that moves a packet pointer, each such walk ends in another (the counter's
	 * last compare is mispredicted too), and the pointer moves on to 64 KiB ("The sequence
	 * of 8193 jumps is too complex"). Unrolled, every walk ends where the words do. */
	/* (three loops of at most 8: LLVM unrolls a loop with early exits only up to 8) */
#pragma unroll
	for (int a = 0; a < 4; a++) {
#pragma unroll
		for (int b = 0; b < 8; b++) {
#pragma unroll
			for (int j = 0; j < 8; j++) {
				if ((a * 8 + b) * 8 + j >= extra)
					goto done;
				asm volatile("" : "+r"(p));
				if ((void *)(p + 8) > data_end)
					goto tail;
				h ^= *(__u64 *)p;
				h *= PL_FNV_PRIME;
				p += 8;
			}
		}
	}
#endif
	goto done;
tail:
#pragma unroll
	for (int j = 0; j < 7; j++) {
		if ((void *)(p + 1) > data_end)
			break;
		h ^= *p;
		h *= PL_FNV_PRIME;
		p++;
	}
done:
	h ^= len;
	h *= PL_FNV_PRIME;
	return h;
}

/*
 * The whole walk, entered at a hook's layer (PL_ENTRY_*: a constant in every program, so the
 * compiler keeps only that hook's path and the verifier sees nothing else), from the cursor
 * `nh` at the frame's first byte (PL_CURSOR, pl_cursor_mem). `proto` is what the hook knows of
 * the first header it sees: the EtherType at PL_ENTRY_NET, the IP protocol at PL_ENTRY_L4 and
 * PL_ENTRY_PAYLOAD; unused at PL_ENTRY_ETH. What lies before the entry stays zero in the
 * record, and offsets (payload_off, parse_end) count from the entry.
 *
 * The hook has already set ts_ns, ifindex, frame_len, hook, and possibly a VLAN tag from
 * metadata (vlan_depth = 1, PL_F_VLAN_FROM_META). Fills the rest of *r.
 */
PL_INLINE void pl_parse_cursor(struct hdr_cursor nh, void *data_end, struct pl_record *r,
			       int entry, int proto)
{
	struct pl_ethhdr *eth;
	struct pl_vlanhdr *vh;
	struct pl_arphdr *ah;
	struct pl_iphdr *iph;
	struct pl_ipv6hdr *ip6h;
	struct pl_tcphdr *th;
	struct pl_udphdr *uh;
	struct pl_icmphdr *ih;
	__u32 ip_end = nh.len, at;
	int ret;

	if (entry == PL_ENTRY_ETH) {
		r->layer = PL_L_ETH;
		proto = parse_ethhdr(&nh, data_end, &eth);
		if (proto < 0)
			goto fail;
		PL_SEEN(r, PL_OFF(&nh));
		__builtin_memcpy(r->dst_mac, eth->dst, 6);
		__builtin_memcpy(r->src_mac, eth->src, 6);
		/* A tag the hook took from skb metadata is a VLAN layer reached (only TC sets one). */
		if (r->vlan_depth)
			r->layer = PL_L_VLAN;

#pragma unroll
		for (int i = 0; i < PL_VLAN_MAX; i++) {
			if (proto != PL_ETH_P_8021Q && proto != PL_ETH_P_8021AD)
				break;
			if (r->vlan_depth >= PL_VLAN_MAX)
				break;
			r->layer = PL_L_VLAN;
			ret = parse_vlanhdr(&nh, data_end, &vh);
			if (ret < 0) {
				proto = ret;
				goto fail;
			}
			PL_SEEN(r, PL_OFF(&nh));
			/* Constant indexes: with a variable one LLVM may turn the address arithmetic
			 * on a stack record into an OR, which the verifier refuses on pointers. */
			if (r->vlan_depth == 0) {
				r->vlan_tpid[0] = proto;
				r->vlan_tci[0] = bpf_ntohs(vh->tci);
			} else {
				r->vlan_tpid[1] = proto;
				r->vlan_tci[1] = bpf_ntohs(vh->tci);
			}
			r->vlan_depth++;
			proto = ret;
		}
		r->eth_proto = proto;
		if (proto == PL_ETH_P_8021Q || proto == PL_ETH_P_8021AD) {
			proto = -PL_ST_VLAN_TOO_MANY;
			goto fail;
		}
	} else if (entry == PL_ENTRY_NET) {
		r->eth_proto = proto;
	}

	if (entry <= PL_ENTRY_NET) {
		at = PL_OFF(&nh);
		if (proto == PL_ETH_P_ARP) {
			r->layer = PL_L_ARP;
			ret = parse_arphdr(&nh, data_end, &ah);
			if (ret < 0) {
				proto = ret;
				goto fail;
			}
			PL_SEEN(r, PL_OFF(&nh));
			r->arp_op = ret;
			goto out;
		} else if (proto == PL_ETH_P_IP) {
			r->layer = PL_L_IPV4;
			proto = parse_iphdr(&nh, data_end, &iph, &ip_end);
			if (proto == -PL_ST_TRUNCATED)
				goto fail;
			PL_SEEN(r, at + sizeof(*iph));
			/* From here the fixed header is readable even when a later check failed. */
			r->ip_version = iph->ver_ihl >> 4;
			r->ip4_hdr_len = (iph->ver_ihl & 0x0f) * 4;
			r->ttl = iph->ttl;
			r->l4_proto = iph->protocol;
			r->ip_tot_len = bpf_ntohs(iph->tot_len);
			r->frag_id = bpf_ntohs(iph->id);
			__builtin_memcpy(r->src_ip, iph->saddr, 4);
			__builtin_memcpy(r->dst_ip, iph->daddr, 4);
			{
				__u16 f = bpf_ntohs(iph->frag);

				if (f & 0x4000)
					r->flags |= PL_F_IP_DF;
				if (f & 0x2000)
					r->flags |= PL_F_IP_MF;
				r->frag_off = (f & 0x1fff) * 8;
				if (f & 0x3fff)
					r->flags |= PL_F_FRAGMENT;
			}
			if (proto < 0)
				goto fail;
			r->ip4_opt_len = r->ip4_hdr_len - 20;
			if (r->frag_off) {
				proto = -PL_ST_FRAG_NONFIRST;
				goto fail;
			}
		} else if (proto == PL_ETH_P_IPV6) {
			r->layer = PL_L_IPV6;
			proto = parse_ip6hdr(&nh, data_end, &ip6h, &ip_end);
			if (proto == -PL_ST_TRUNCATED)
				goto fail;
			PL_SEEN(r, at + sizeof(*ip6h));
			r->ip_version = bpf_ntohl(ip6h->ver_tc_flow) >> 28;
			r->ttl = ip6h->hop_limit;
			r->l4_proto = ip6h->nexthdr;
			r->ip_tot_len = sizeof(*ip6h) + bpf_ntohs(ip6h->payload_len);
			__builtin_memcpy(r->src_ip, ip6h->saddr, 16);
			__builtin_memcpy(r->dst_ip, ip6h->daddr, 16);
			if (proto < 0)
				goto fail;
			proto = parse_ip6_ext(&nh, data_end, ip_end, proto, r);
			if (proto < 0)
				goto fail;
		} else {
			proto = -PL_ST_UNSUPPORTED_ETHERTYPE;
			goto fail;
		}
	}
	r->l4_proto = proto;

	if (entry <= PL_ENTRY_L4) {
		at = PL_OFF(&nh);
		if (proto == PL_IPPROTO_TCP) {
			r->layer = PL_L_TCP;
			ret = parse_tcphdr(&nh, data_end, ip_end, &th);
			if (ret == -PL_ST_TRUNCATED) {
				proto = ret;
				goto fail;
			}
			PL_SEEN(r, at + sizeof(*th));
			r->sport = bpf_ntohs(th->source);
			r->dport = bpf_ntohs(th->dest);
			r->tcp_seq = bpf_ntohl(th->seq);
			r->tcp_ack = bpf_ntohl(th->ack_seq);
			r->tcp_doff = th->doff_res >> 4;
			r->tcp_flags = th->flags;
			if (ret < 0) {
				proto = ret;
				goto fail;
			}
			/* the options are read too (parse_tcp_options, at the end) */
			PL_SEEN(r, PL_OFF(&nh));
		} else if (proto == PL_IPPROTO_UDP) {
			r->layer = PL_L_UDP;
			ret = parse_udphdr(&nh, data_end, ip_end, &uh);
			if (ret < 0) {
				proto = ret;
				goto fail;
			}
			PL_SEEN(r, PL_OFF(&nh));
			r->sport = bpf_ntohs(uh->source);
			r->dport = bpf_ntohs(uh->dest);
		} else if ((proto == PL_IPPROTO_ICMP && r->ip_version == 4) ||
			   (proto == PL_IPPROTO_ICMPV6 && r->ip_version == 6)) {
			r->layer = proto == PL_IPPROTO_ICMP ? PL_L_ICMP : PL_L_ICMPV6;
			ret = parse_icmphdr(&nh, data_end, ip_end, &ih);
			if (ret < 0) {
				proto = ret;
				goto fail;
			}
			PL_SEEN(r, PL_OFF(&nh));
			r->icmp_type = ih->type;
			r->icmp_code = ih->code;
			if ((proto == PL_IPPROTO_ICMP && (ih->type == 0 || ih->type == 8)) ||
			    (proto == PL_IPPROTO_ICMPV6 && (ih->type == 128 || ih->type == 129))) {
				r->sport = bpf_ntohs(ih->id);
				r->dport = bpf_ntohs(ih->seq);
			}
		} else {
			goto out;   /* an L4 protocol pktlab does not parse: the walk ends at IP */
		}
	}

	r->payload_off = PL_OFF(&nh);
	r->payload_len = ip_end - PL_OFF(&nh);
	if (r->payload_len) {
		r->layer = PL_L_PAYLOAD;
		pl_peek_payload(r, &nh, data_end);
		r->l7 = pl_guess_l7(r);
	}
	if (entry <= PL_ENTRY_L4)
		parse_tcp_options(r, &nh, data_end);
	goto out;
fail:
	r->status = -proto;
out:
	return;
}

#ifndef PKTLAB_USERSPACE
/* The walk of the frame an XDP or TC program is handed, from the Ethernet header:
 * pl_parse_ctx(ctx, &record), in every build. */
#define pl_parse_ctx(x, r)                                                                \
	pl_parse_cursor((struct hdr_cursor)PL_CURSOR(x), (void *)(long)(x)->data_end, (r),    \
			PL_ENTRY_ETH, 0)
#endif

#ifndef PL_NO_PERFMON
/* The walk over bytes in memory (data..data_end), entered at `entry` (see pl_parse_cursor):
 * the hooks of pktlab_copy.h, and userspace. */
PL_INLINE void pl_parse_at(void *data, void *data_end, struct pl_record *r, int entry, int proto)
{
	pl_parse_cursor(pl_cursor_mem(data, data_end), data_end, r, entry, proto);
}

/* The walk from the Ethernet header: XDP, TC and the kprobe hook. */
PL_INLINE void pl_parse(void *data, void *data_end, struct pl_record *r)
{
	pl_parse_at(data, data_end, r, PL_ENTRY_ETH, 0);
}
#else
/* Without CAP_PERFMON the parse needs the program's context (see struct hdr_cursor), and it
 * reads packets, not copies in memory (whose pointers it may not compare). */
PL_INLINE void pl_parse(void *data, void *data_end, struct pl_record *r)
	__attribute__((unavailable("without CAP_PERFMON the parser needs the program's context: "
				   "call pl_parse_ctx(ctx, &record)")));
PL_INLINE void pl_parse_at(void *data, void *data_end, struct pl_record *r, int entry,
			   int proto)
	__attribute__((unavailable("without CAP_PERFMON the parser reads the packet a program "
				   "is handed, not a copy: call pl_parse_ctx(ctx, &record)")));
#endif

#endif /* PKTLAB_PARSE_H */
