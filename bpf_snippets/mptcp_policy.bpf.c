/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * mptcp_policy.bpf.c - a path policy for MPTCP, configured from a map: at TC ingress of every
 * dut path veth, MP_JOIN SYNs (a SYN without ACK carrying TCP option 30, subtype 1) are
 * refused by dropping them, as cfg[0] (struct pl_mp_cfg, mptcp_policy.h) says:
 *   no_path_mask   "no subflow on path N": a join arriving on path N (the ingress interface,
 *                  from `paths`: ifindex -> path) is refused;
 *   max_joins      "at most K joins per connection": distinct joins are counted per token
 *                  (the connection's, in the option) and 4-tuple; a join's first verdict is
 *                  remembered in `joins`, so its retransmitted SYNs get the same answer and
 *                  are not counted again;
 *   from_net/mask  "joins only from this network": a join from another source is refused.
 * Everything else passes (fail open, one exit): the first subflow's MP_CAPABLE handshake,
 * data, ACKs, ADD_ADDR. "Passes" is TC_ACT_UNSPEC, no verdict: another filter on the same hook
 * (the path switch of the RTO demo) still sees the packet, and with none left it goes on;
 * TC_ACT_OK would end the filter chain here. Each MP_JOIN SYN is reported in the ring
 * `joins_seen` with its path, verdict, reason and option bytes; per path, packets and bytes
 * are counted.
 *
 * Headers are read with pktlab's one parser (pktlab_parse.h); the options walk is here.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/pkt_cls.h>
#include "pktlab_parse.h"
#include "mptcp_policy.h"

#define MP_OPT_KIND 30
#define MP_SUB_JOIN 1
#define MP_JOIN_SYN_LEN 12
#define OPTS_WALKED 20           /* 40 option bytes, at least 2 each but NOPs */
#define TCP_SYN 0x02
#define TCP_ACK 0x10

BPF_HASH(paths, __u32, __u32, 16);                  /* dut ifindex -> path */
BPF_ARRAY(cfg, struct pl_mp_cfg, 1);
BPF_HASH(joins, struct pl_mp_join_key, __u8, PL_MP_JOINS_MAX);  /* join -> verdict + 1 */
BPF_HASH(per_token, __u32, __u32, PL_MP_JOINS_MAX); /* token -> distinct joins allowed */
BPF_PERCPU_ARRAY(stats, struct pl_mp_path_stat, PL_MP_PATHS_MAX + 1);
BPF_RINGBUF_OUTPUT(joins_seen, 8);

/*
 * The MP_JOIN option among the TCP options [opts, opts + optlen), or NULL.
 *
 * The offset is a scalar masked to 6 bits at the end of every iteration: whatever the option
 * (NOP, MSS, ...), every path through the body then ends in the same verifier state (off in
 * [0, 63]) and the verifier prunes it. Walking a packet pointer `p += p[1]` instead gives each
 * path its own state: 3 branches ^ 20 iterations, and the verifier gives up (E2BIG). The mask
 * changes nothing at run time: off + len <= optlen <= 40 is checked first.
 */
static __always_inline __u8 *find_mp_join(__u8 *opts, __u32 optlen, void *data_end)
{
	__u32 off = 0, len;
	__u8 *p;
	int i;

	for (i = 0; i < OPTS_WALKED; i++) {
		if (off >= optlen)
			return NULL;
		p = opts + off;
		if (p + 2 > (__u8 *)data_end)
			return NULL;
		if (p[0] == 0)                       /* end of options */
			return NULL;
		if (p[0] == 1) {                     /* NOP */
			off = (off + 1) & 0x3f;
			continue;
		}
		len = p[1];
		if (len < 2 || off + len > optlen)
			return NULL;
		if (p[0] == MP_OPT_KIND && len >= MP_JOIN_SYN_LEN) {
			/* its own `if`, before p[2] is read: in one && chain clang may load p[2]
			 * first, and the verifier refuses the read ("invalid access to packet") */
			if (p + MP_JOIN_SYN_LEN > (__u8 *)data_end)
				return NULL;
			if ((p[2] >> 4) == MP_SUB_JOIN)
				return p;
		}
		off = (off + len) & 0x3f;
	}
	return NULL;
}

/* The verdict of a join seen for the first time (PL_MP_WHY_* in *why). */
static __always_inline __u8 first_verdict(struct pl_mp_cfg *c, __u32 path,
					  struct pl_mp_join_key *k, __u8 *why)
{
	__u32 *cnt, one = 1;

	*why = PL_MP_WHY_ALLOWED;
	if (!c)
		return PL_MP_PASS;
	if (path <= PL_MP_PATHS_MAX && (c->no_path_mask >> path) & 1) {
		*why = PL_MP_WHY_NO_PATH;
		return PL_MP_DROP;
	}
	if (c->from_mask && (k->saddr & c->from_mask) != c->from_net) {
		*why = PL_MP_WHY_NOT_FROM;
		return PL_MP_DROP;
	}
	if (c->max_joins == PL_MP_NO_LIMIT)
		return PL_MP_PASS;
	cnt = per_token.lookup(&k->token);
	if ((cnt ? *cnt : 0) >= c->max_joins) {
		*why = PL_MP_WHY_MAX_JOINS;
		return PL_MP_DROP;
	}
	if (cnt)
		__sync_fetch_and_add(cnt, 1);
	else
		per_token.update(&k->token, &one);
	return PL_MP_PASS;
}

int pktlab_mptcp_policy(struct __sk_buff *skb)
{
	void *data_end = (void *)(long)skb->data_end;
	struct hdr_cursor nh = PL_CURSOR(skb);
	struct pl_mp_join_key k = {};
	struct pl_mp_path_stat *st;
	struct pl_mp_join_ev *e;
	struct pl_ethhdr *eth;
	struct pl_iphdr *iph;
	struct pl_tcphdr *th;
	__u32 ifindex = skb->ifindex, zero = 0, path, *pp;
	__u8 *opt, *known, verdict, why, again = 0, v;
	__u32 ip_end;
	int ret = TC_ACT_UNSPEC, tcplen;

	pp = paths.lookup(&ifindex);
	if (!pp || *pp > PL_MP_PATHS_MAX)
		goto out;
	path = *pp;
	st = stats.lookup(&path);
	if (!st)
		goto out;
	st->packets++;
	st->bytes += skb->len;
	if (parse_ethhdr(&nh, data_end, &eth) != PL_ETH_P_IP)
		goto out;
	if (parse_iphdr(&nh, data_end, &iph, &ip_end) != PL_IPPROTO_TCP)
		goto out;
	tcplen = parse_tcphdr(&nh, data_end, ip_end, &th);
	if (tcplen < 0 || (th->flags & (TCP_SYN | TCP_ACK)) != TCP_SYN)
		goto out;
	opt = find_mp_join((__u8 *)(th + 1), tcplen - sizeof(*th), data_end);
	if (!opt)
		goto out;
	st->join_syns++;
	__builtin_memcpy(&k.token, opt + 4, 4);
	__builtin_memcpy(&k.saddr, iph->saddr, 4);
	__builtin_memcpy(&k.daddr, iph->daddr, 4);
	k.sport = th->source;
	k.dport = th->dest;
	known = joins.lookup(&k);
	if (known) {
		again = 1;
		verdict = (*known - 1) & 1;
		why = (*known - 1) >> 1;
	} else {
		verdict = first_verdict(cfg.lookup(&zero), path, &k, &why);
		v = 1 + (verdict | why << 1);
		joins.update(&k, &v);
	}
	e = joins_seen.ringbuf_reserve(sizeof(*e));
	if (e) {
		e->ts_ns = bpf_ktime_get_ns();
		e->key = k;
		e->path = path;
		e->verdict = verdict;
		e->why = why;
		e->again = again;
		e->opt_len = MP_JOIN_SYN_LEN;
		__builtin_memcpy(e->opt, opt, MP_JOIN_SYN_LEN);
		e->reserved = 0;
		joins_seen.ringbuf_submit(e, 0);
	}
	if (verdict == PL_MP_DROP) {
		st->dropped++;
		ret = TC_ACT_SHOT;
	}
out:
	return ret;
}
