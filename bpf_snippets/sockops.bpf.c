/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * sockops.bpf.c - the sock-ops hook: every sock_ops callback of every TCP socket in the lab's
 * cgroup v2, with its arguments, as one record (struct pl_sockops_ev, sockops.h) in a ring of
 * its own: these are connection events, not packets, so they do not go through the packet
 * record transport. MPTCP subflows are TCP sockets too: each record says which connection
 * (the MPTCP token) and which subflow (its id) it belongs to.
 *
 * Optional callbacks (RTO, retransmit, state change, RTT) are per socket, off by default, and
 * only a program can turn them on, for a full socket: it does so itself with
 * bpf_sock_ops_cb_flags_set() at TCP_CONNECT_CB (the active side), and at
 * ACTIVE/PASSIVE_ESTABLISHED_CB (a passive child starts with its listener's flags: none).
 *
 * MPTCP: bpf_skc_to_mptcp_sock() gives the connection (struct mptcp_sock) of a subflow; its
 * token, and the subflow's id in the subflow context (inet_connection_sock.icsk_ulp_data), are
 * read at offsets from the running kernel's BTF, given at compile time as -D constants by
 * pktlab/mptcp/sockops.py (never from headers: bcc compiles against another kernel's). Those
 * reads are bpf_probe_read_kernel(), which needs CAP_PERFMON: fine for pktlab's own program,
 * loaded as root; a learner's program could not.
 *
 * Counts per callback go to a per-CPU array as well, so they stay exact if the ring fills
 * (its refusals are counted in `lost`).
 */
#include <uapi/linux/bpf.h>
#include "sockops.h"

#if !defined(OFF_MSK_TOKEN) || !defined(OFF_MSK_REMOTE_KEY) || !defined(OFF_ICSK_ULP_DATA) || \
    !defined(OFF_SF_SUBFLOW_ID) || !defined(OFF_SF_LOCAL_ID) || !defined(OFF_SF_REMOTE_ID)
#error "compile with the BTF offsets as -D constants (pktlab/mptcp/sockops.py)"
#endif

#ifndef PL_SO_CB_FLAGS
#define PL_SO_CB_FLAGS (BPF_SOCK_OPS_RTO_CB_FLAG | BPF_SOCK_OPS_RETRANS_CB_FLAG | \
			BPF_SOCK_OPS_STATE_CB_FLAG | BPF_SOCK_OPS_RTT_CB_FLAG)
#endif
#ifndef PL_SO_RING_PAGES
#define PL_SO_RING_PAGES 64      /* 256 KiB: ~1,500 records between two reads */
#endif

BPF_RINGBUF_OUTPUT(events, PL_SO_RING_PAGES);
BPF_PERCPU_ARRAY(counts, __u64, PL_SO_MAX_OP);
BPF_PERCPU_ARRAY(lost, __u64, 1);

static __always_inline void mptcp_view(struct bpf_sock_ops *skops, struct pl_sockops_ev *e)
{
	struct bpf_sock *sk = skops->sk;
	void *msk, *tp, *ctx = 0;

	if (!sk)
		return;
	/* NULL unless a full TCP socket that is an MPTCP subflow (request socks are not) */
	msk = bpf_skc_to_mptcp_sock(sk);
	if (!msk)
		return;
	e->is_mptcp = 1;
	bpf_probe_read_kernel(&e->token, sizeof(e->token), msk + OFF_MSK_TOKEN);
	bpf_probe_read_kernel(&e->remote_key, sizeof(e->remote_key), msk + OFF_MSK_REMOTE_KEY);
	/* the subflow context hangs off the TCP socket: inet_csk(sk)->icsk_ulp_data */
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return;
	bpf_probe_read_kernel(&ctx, sizeof(ctx), tp + OFF_ICSK_ULP_DATA);
	if (!ctx)
		return;
	bpf_probe_read_kernel(&e->subflow_id, sizeof(e->subflow_id), ctx + OFF_SF_SUBFLOW_ID);
	bpf_probe_read_kernel(&e->local_id, sizeof(e->local_id), ctx + OFF_SF_LOCAL_ID);
	bpf_probe_read_kernel(&e->remote_id, sizeof(e->remote_id), ctx + OFF_SF_REMOTE_ID);
}

int pktlab_sockops(struct bpf_sock_ops *skops)
{
	__u32 op = skops->op, slot = op < PL_SO_MAX_OP ? op : PL_SO_MAX_OP - 1, zero = 0;
	__u32 flags_before = skops->bpf_sock_ops_cb_flags;
	struct pl_sockops_ev *e;
	int set_ret = 0;
	__u64 *n;

	n = counts.lookup(&slot);
	/* the verifier insists on the NULL check even for an index inside the array */
	if (n)
		*n += 1;
	if (skops->is_fullsock && (op == BPF_SOCK_OPS_TCP_CONNECT_CB ||
				   op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
				   op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB))
		set_ret = bpf_sock_ops_cb_flags_set(skops, PL_SO_CB_FLAGS);

	e = events.ringbuf_reserve(sizeof(*e));
	if (!e) {
		n = lost.lookup(&zero);
		if (n)
			*n += 1;
		goto out;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	e->cookie = bpf_get_socket_cookie(skops);
	e->netns = bpf_get_netns_cookie(skops);
	e->op = op;
	e->args[0] = skops->args[0];
	e->args[1] = skops->args[1];
	e->args[2] = skops->args[2];
	e->args[3] = skops->args[3];
	e->family = skops->family;
	e->remote_ip4 = skops->remote_ip4;
	e->local_ip4 = skops->local_ip4;
	e->remote_port = skops->remote_port;     /* raw: see sockops.h */
	e->local_port = skops->local_port;
	e->is_fullsock = skops->is_fullsock;
	e->state = skops->state;
	e->srtt_us = skops->srtt_us;
	e->snd_cwnd = skops->snd_cwnd;
	e->total_retrans = skops->total_retrans;
	e->cb_flags = flags_before;
	e->set_ret = set_ret;
	e->skb_len = skops->skb_len;
	e->skb_tcp_flags = skops->skb_tcp_flags;
	/* fields of the full socket only: the verifier refuses skops->sk's helpers otherwise */
	if (skops->is_fullsock)
		mptcp_view(skops, e);
	/* the packet that completed the handshake: its MPTCP option (MP_CAPABLE or MP_JOIN) */
	if (op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB || op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		e->opt[0] = 30;          /* search by kind; the buffer must hold the whole option */
		e->opt_len = bpf_load_hdr_opt(skops, e->opt, PL_SO_OPT_BYTES, 0);
	}
	events.ringbuf_submit(e, 0);
out:
	return 1;
}
