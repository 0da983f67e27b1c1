/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * pktlab_record.h - the one record every hook emits and the Python walker returns.
 *
 * Also struct pl_ctl, the control block of the per-CPU record rings (pktlab_common.h).
 *
 * Read by: every <hook>.bpf.c (through pktlab_parse.h), pktlab/record.py (mirrored with
 * ctypes; tests/test_record_layout.py compiles this header with the system C compiler and
 * proves that the size and every field offset match).
 *
 * Rules for this file, because Python mirrors it by hand:
 *   - fixed-width types only, every field naturally aligned, no implicit padding
 *     (the layout test would catch it, but it is cheaper not to need it);
 *   - multi-byte numbers are stored in HOST byte order (the parser converts with
 *     bpf_ntohs/bpf_ntohl); addresses and MACs are stored as bytes in wire order;
 *   - new fields go at the end, before `payload`, and the size stays a multiple of 8.
 *
 * It must compile both under bcc (kernel types from <linux/types.h>) and with the plain
 * system compiler (for the layout test), hence the small type shim below.
 */
#ifndef PKTLAB_RECORD_H
#define PKTLAB_RECORD_H

#ifdef PKTLAB_USERSPACE
#include <stdint.h>
typedef uint8_t __u8;
typedef uint16_t __u16;
typedef uint32_t __u32;
typedef uint64_t __u64;
#endif

/* Limits shared with the Python walker (pktlab/record.py reads them from this file). */
#define PL_VLAN_MAX 2          /* VLAN tags parsed (802.1Q / 802.1ad); a third is PL_ST_VLAN_TOO_MANY */
#define PL_IPV6_EXT_MAX 6      /* IPv6 extension headers walked; a seventh is PL_ST_EXT_TOO_MANY */
#define PL_PAYLOAD_PEEK 32     /* first payload bytes copied into the record */
#define PL_HASH_BYTES 64       /* bytes of the frame always hashed into `fingerprint` (see below) */
#define PL_HASH_MAX 2048       /* at most this many bytes hashed (a bound for the verifier) */

/* Which hook produced the record. */
#define PL_HOOK_WALKER 0       /* the Python walker (userspace) */
#define PL_HOOK_XDP 1
#define PL_HOOK_TC_INGRESS 2
#define PL_HOOK_TC_EGRESS 3
#define PL_HOOK_KPROBE 4       /* whichever tracing mechanism attached it (kprobe, fentry, raw tp) */
#define PL_HOOK_CGROUP_INGRESS 5   /* cgroup_skb ingress: from the IP header */
#define PL_HOOK_SOCKET_FILTER 6    /* SO_ATTACH_BPF on the receiving socket: from the transport header */
#define PL_HOOK_SK_SKB 7           /* sk_skb verdict on a sockmap: the payload only */
#define PL_HOOK_RECV 8             /* where the application receives: the bytes it got */

/* Where a hook enters the parse (pl_parse_at): the first header it sees. */
#define PL_ENTRY_ETH 0         /* the Ethernet header (XDP, TC, kprobe) */
#define PL_ENTRY_NET 1         /* the network header, its EtherType given (cgroup_skb) */
#define PL_ENTRY_L4 2          /* the transport header, its IP protocol given (socket filter) */
#define PL_ENTRY_PAYLOAD 3     /* the payload, its IP protocol given (sk_skb, recv) */

/* Why parsing stopped; `layer` says where. */
#define PL_ST_OK 0                 /* parsed as far as pktlab goes */
#define PL_ST_TRUNCATED 1          /* the header at the layer named does not fit in the frame */
#define PL_ST_IHL_LT5 2            /* IPv4 IHL below 5 (20 bytes) */
#define PL_ST_IHL_BEYOND 3         /* IPv4 IHL runs past the end of the frame */
#define PL_ST_TOTLEN 4             /* IP total/payload length disagrees with the header or frame */
#define PL_ST_DOFF_LT5 5           /* TCP data offset below 5 */
#define PL_ST_DOFF_BEYOND 6        /* TCP data offset runs past the IP payload */
#define PL_ST_FRAG_NONFIRST 7      /* a non-first fragment: no L4 header to parse */
#define PL_ST_VLAN_TOO_MANY 8      /* more than PL_VLAN_MAX VLAN tags */
#define PL_ST_EXT_TOO_MANY 9       /* more than PL_IPV6_EXT_MAX IPv6 extension headers */
#define PL_ST_UNSUPPORTED_ETHERTYPE 10 /* EtherType pktlab does not parse */
#define PL_ST_BAD_VERSION 11       /* IP version field disagrees with the EtherType */
#define PL_ST__COUNT 12

/* Layers: where parsing stopped (for PL_ST_OK: the last layer parsed). */
#define PL_L_NONE 0
#define PL_L_ETH 1
#define PL_L_VLAN 2
#define PL_L_ARP 3
#define PL_L_IPV4 4
#define PL_L_IPV6 5
#define PL_L_IPV6_EXT 6
#define PL_L_TCP 7
#define PL_L_UDP 8
#define PL_L_ICMP 9
#define PL_L_ICMPV6 10
#define PL_L_PAYLOAD 11
#define PL_L__COUNT 12

/* L7 guess from the first payload bytes (and ports for DNS). */
#define PL_L7_NONE 0
#define PL_L7_HTTP_REQUEST 1
#define PL_L7_HTTP_RESPONSE 2
#define PL_L7_TLS_HANDSHAKE 3
#define PL_L7_DNS 4

/*
 * fingerprint: the frame's identity as the hook saw it, FNV-1a (64-bit) over its first
 *   n = min(readable bytes, round_up_8(max(PL_HASH_BYTES, parse_end)), PL_HASH_MAX)
 * bytes, taken as little-endian 8-byte words while 8 bytes remain, then byte by byte, and
 * finally the frame length (as one more 64-bit word). Every byte the parse read lies in the
 * first parse_end bytes, so two frames with the same fingerprint (and the same metadata, e.g. a
 * VLAN tag from the skb) give the same record: pktlab matches records to frames by it, exactly,
 * in any order (pktlab/compare.py). Python computes the same (pktlab/record.py: fingerprint).
 */
#define PL_FNV_OFFSET 0xcbf29ce484222325ULL
#define PL_FNV_PRIME 0x100000001b3ULL

/* flags */
#define PL_F_VLAN_FROM_META 0x01   /* the outer VLAN tag came from skb metadata, not the bytes */
#define PL_F_IP_MF 0x02            /* more fragments (IPv4 MF, or IPv6 fragment header M) */
#define PL_F_IP_DF 0x04            /* IPv4 don't fragment */
#define PL_F_IPV6_FRAG 0x08        /* an IPv6 fragment header was present */
#define PL_F_FRAGMENT 0x10         /* the packet is a fragment (first or later) */

/*
 * TCP options (tcp_opt_flags): what the option walk found (parse_tcp_options in
 * pktlab_parse.h). A field of the record is meaningful only when its flag is set: every option
 * field is zero when its option is absent, and zero is a valid value for some of them (a window
 * scale of 0, MPTCP subtype 0 = MP_CAPABLE). A later option of the same kind overwrites an
 * earlier one, as Linux's tcp_parse_options does; a known kind with a length it never has is
 * skipped like an unknown one.
 */
#define PL_TCPO_MSS 0x01           /* maximum segment size: tcp_mss */
#define PL_TCPO_WSCALE 0x02        /* window scale: tcp_wscale */
#define PL_TCPO_SACK_PERM 0x04     /* SACK permitted */
#define PL_TCPO_SACK 0x08          /* SACK blocks: tcp_sack_blocks */
#define PL_TCPO_TIMESTAMP 0x10     /* timestamps: tcp_ts_val, tcp_ts_ecr */
#define PL_TCPO_MPTCP 0x20         /* multipath TCP (kind 30): mptcp_subtype, mptcp_subtypes */
#define PL_TCPO_OTHER 0x40         /* an option skipped undecoded (another kind, or a wrong length) */
#define PL_TCPO_BAD 0x80           /* the walk stopped at a length below 2, missing, or past the header */

/* MPTCP option subtypes (RFC 8684 section 3; the option's third byte >> 4): mptcp_subtype. */
#define PL_MPTCP_MP_CAPABLE 0      /* connection setup: version, flags, keys */
#define PL_MPTCP_MP_JOIN 1         /* a new subflow; its SYN form (length 12) carries the token */
#define PL_MPTCP_DSS 2             /* data sequence signal: data ACK, mapping */
#define PL_MPTCP_ADD_ADDR 3        /* an address announced (or echoed) */
#define PL_MPTCP_REMOVE_ADDR 4     /* address ids withdrawn */
#define PL_MPTCP_MP_PRIO 5         /* a subflow's backup priority changed */
#define PL_MPTCP_MP_FAIL 6         /* checksum failure: fall back to TCP */
#define PL_MPTCP_MP_FASTCLOSE 7    /* the connection closed at once (in a RST or an ACK) */
#define PL_MPTCP_MP_TCPRST 8       /* why a subflow was reset */
#define PL_MPTCP_MP_EXPERIMENTAL 15 /* private use */

struct pl_record {
	__u64 ts_ns;            /* when the hook ran, ns (resolution: pktlab_common.h pl_now); 0 from the walker */
	__u64 fingerprint;      /* see PL_FNV_* below; matches records to injected frames */
	__u32 ifindex;          /* interface the hook saw the frame on; 0 from the walker */
	__u32 frame_len;        /* bytes of the frame at this hook (XDP: data_end - data; TC: skb->len) */
	__u8 hook;              /* PL_HOOK_* */
	__u8 status;            /* PL_ST_* */
	__u8 layer;             /* PL_L_* */
	__u8 flags;             /* PL_F_* */
	__u16 eth_proto;        /* EtherType after up to PL_VLAN_MAX tags (host order) */
	__u8 vlan_depth;        /* tags parsed */
	__u8 ip_version;        /* 4, 6 or 0 */
	__u16 vlan_tpid[PL_VLAN_MAX]; /* outer first (host order) */
	__u16 vlan_tci[PL_VLAN_MAX];  /* PCP/DEI/VID as on the wire (host order) */
	__u8 dst_mac[6];
	__u8 src_mac[6];
	__u8 src_ip[16];        /* IPv4: first 4 bytes, rest zero */
	__u8 dst_ip[16];
	__u8 ttl;               /* IPv4 TTL or IPv6 hop limit */
	__u8 ip4_hdr_len;       /* IHL * 4 in bytes (as read, even when invalid) */
	__u8 ip4_opt_len;       /* ip4_hdr_len - 20 when valid */
	__u8 l4_proto;          /* IPv4 protocol / final IPv6 next header */
	__u16 ip_tot_len;       /* IPv4 total length, or 40 + IPv6 payload length */
	__u16 frag_off;         /* fragment offset in bytes (host order) */
	__u32 frag_id;          /* IPv4 id or IPv6 fragment identification */
	__u16 sport;            /* TCP/UDP ports (host order); ICMP echo id in sport */
	__u16 dport;
	__u32 tcp_seq;          /* host order */
	__u32 tcp_ack;
	__u8 tcp_flags;         /* FIN..CWR byte */
	__u8 tcp_doff;          /* data offset in 32-bit words (as read) */
	__u8 icmp_type;
	__u8 icmp_code;
	__u16 payload_off;      /* offset of the L4 payload from the start of the frame */
	__u16 payload_len;      /* bytes of payload inside the IP packet (not counting padding) */
	__u16 arp_op;           /* ARP opcode (host order) */
	__u8 ipv6_ext_count;    /* IPv6 extension headers walked */
	__u8 l7;                /* PL_L7_* */
	__u16 parse_end;        /* one past the last frame byte the parse read (headers, peek) */
	/* TCP options (PL_TCPO_* above: a field counts only when its flag is set) */
	__u16 tcp_mss;          /* MSS option (host order) */
	__u8 tcp_wscale;        /* window scale shift count, as sent (a receiver caps it at 14) */
	__u8 tcp_opt_flags;     /* PL_TCPO_*: the options found, and how the walk ended */
	__u8 tcp_sack_blocks;   /* SACK option: blocks it carries (1..4) */
	__u8 mptcp_subtype;     /* the first MPTCP option's subtype (PL_MPTCP_*) */
	__u32 tcp_ts_val;       /* timestamps option: TSval (host order) */
	__u32 tcp_ts_ecr;       /* TSecr (host order) */
	__u32 mptcp_token;      /* MP_JOIN's SYN form (length 12): the receiver's token (host order); else 0 */
	__u16 mptcp_subtypes;   /* 1 << subtype for every MPTCP option (a RST may carry two) */
	__u16 _reserved;        /* zero; room for the next field */
	__u8 payload[PL_PAYLOAD_PEEK]; /* first payload bytes, zero-filled */
};

/*
 * One CPU's record ring control (see pktlab_common.h): 192 bytes, three cache lines. The kernel
 * writes the first line (and seen[] spills into the second); Python writes only `tail`, alone
 * on the third, so the two sides never share a line they both write.
 */
struct pl_ctl {
	__u64 head;                     /* records written (kernel) */
	__u64 lost;                     /* records refused, no free slot (kernel) */
	__u64 seen[PL_ST__COUNT];       /* packets parsed, by status (kernel) */
	__u64 busy;                     /* a record is being written (kernel; see pl_slot) */
	__u64 _pad0;
	__u64 tail;                     /* records consumed (Python) */
	__u64 _pad1[7];
};

#endif /* PKTLAB_RECORD_H */
