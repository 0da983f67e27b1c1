/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * kprobe.bpf.c - the pktlab parse from an sk_buff, in the receive path
 * (__netif_receive_skb_core, where the netif_receive_skb tracepoint fires).
 *
 * One source, three ways in, chosen by pktlab at run time (best first):
 *   -DPL_MECH=1  kprobe on __netif_receive_skb_core        (needs CONFIG_KPROBES)
 *   -DPL_MECH=2  fentry on __netif_receive_skb_core        (needs BPF trampolines)
 *   -DPL_MECH=3  raw tracepoint netif_receive_skb           (always there)
 * -DPL_SKB_PP=1 when the function's first parameter is `struct sk_buff **` (BTF says).
 *
 * The hook is global: it sees every packet of every namespace. config[0] names the one
 * interface (ifindex + network namespace inode) whose packets this copy records, so two labs
 * each see only their own.
 *
 * sk_buff and net_device fields are read with bpf_probe_read_kernel() at offsets pktlab took
 * from the running kernel's BTF (-DPL_OFF_*), never from the headers this was compiled with.
 *
 * The receive tracepoint runs in softirq (NAPI) for the lab's veth, like XDP and TC, so one CPU
 * never runs two copies of this program at once: the per-CPU record ring's rule holds.
 */
#include <uapi/linux/bpf.h>
#include <uapi/linux/ptrace.h>

/* The copy buffer and the clamp (before the parser: pktlab_common.h includes it). */
#include "pktlab_copy.h"
#include "pktlab_common.h"

struct pl_kcfg {
	__u32 ifindex;
	__u32 netns_inum;
};

PL_DECLARE_MAPS();
BPF_PERCPU_ARRAY(scratch, struct pl_kbuf, 1);
BPF_ARRAY(config, struct pl_kcfg, 1);

#define PL_READ(dst, ptr, off) bpf_probe_read_kernel(&(dst), sizeof(dst), (void *)(ptr) + (off))

static __always_inline int pl_skb(void *skb)
{
	__u32 key = 0, ifindex = 0, inum = 0, len = 0, data_len = 0;
	__u32 cpu = bpf_get_smp_processor_id();
	__u64 copy;
	__u16 mac_header = 0;
	void *dev = 0, *net = 0, *head = 0, *data = 0, *mac;
	struct pl_kcfg *cfg = config.lookup(&key);
	struct pl_kbuf *buf = scratch.lookup(&key);
	struct pl_ctl *c;
	struct pl_record *r;
	void *start, *end;
#ifdef PL_NO_RECORD
	struct pl_record rec = {};
#else
	__u32 slot;
#endif

	if (!cfg || !buf || !skb)
		goto out;
	PL_READ(dev, skb, PL_OFF_SKB_DEV);
	if (!dev)
		goto out;
	PL_READ(ifindex, dev, PL_OFF_DEV_IFINDEX);
	if (ifindex != cfg->ifindex)
		goto out;
	PL_READ(net, dev, PL_OFF_DEV_NET);
	if (!net)
		goto out;
	PL_READ(inum, net, PL_OFF_NET_INUM);
	if (inum != cfg->netns_inum)
		goto out;

	PL_READ(head, skb, PL_OFF_SKB_HEAD);
	PL_READ(data, skb, PL_OFF_SKB_DATA);
	PL_READ(len, skb, PL_OFF_SKB_LEN);
	PL_READ(data_len, skb, PL_OFF_SKB_DATA_LEN);
	PL_READ(mac_header, skb, PL_OFF_SKB_MAC_HEADER);
	/* (u16)~0 means "not set": then the frame starts at data */
	mac = mac_header == 0xffff ? data : head + mac_header;
	if (mac > data || data_len > len)
		goto out;
	/* Only the linear part is behind `data`: the rest (data_len bytes) lies in page fragments,
	 * which is where locally generated TCP keeps its payload. Reading past the linear part
	 * would read whatever follows it in memory, so the parse sees the linear part only, and a
	 * paged frame ends in PL_ST_TOTLEN, which pktlab reports as an explained difference. So do
	 * frames longer than PL_KCOPY, parsed from their first PL_KCOPY bytes. */
	copy = PL_COPY_LEN(len - data_len + (data - mac));
	len += data - mac;
	if (bpf_probe_read_kernel(buf->b, copy, mac) < 0)
		goto out;
	start = buf->b;
	end = buf->b + copy;

	c = ctl.lookup(&cpu);
	if (!c)
		goto out;
#ifdef PL_NO_RECORD
	r = &rec;
#else
	if (pl_slot(c, cpu, &slot))
		goto out;
	r = events.lookup(&slot);
	if (!r) {
		pl_abort(c);
		goto out;
	}
	pl_begin(r);
#endif
	r->ifindex = ifindex;
	r->hook = PL_HOOK_KPROBE;
	r->frame_len = len;
	pl_parse(start, end, r);
	pl_count(c, r->status);
#ifndef PL_NO_RECORD
	pl_identify(r, start, end, len);
	pl_commit(c);
#endif
out:
	return 0;
}

static __always_inline void *pl_deref_skb(void *arg)
{
#if PL_SKB_PP
	void *skb = 0;

	bpf_probe_read_kernel(&skb, sizeof(skb), arg);
	return skb;
#else
	return arg;
#endif
}

#if PL_MECH == 1
int pktlab_kprobe(struct pt_regs *ctx)
{
	return pl_skb(pl_deref_skb((void *)PT_REGS_PARM1(ctx)));
}
#elif PL_MECH == 2
KFUNC_PROBE(__netif_receive_skb_core, void *arg0)
{
	return pl_skb(pl_deref_skb(arg0));
}
#else
int pktlab_rawtp(struct bpf_raw_tracepoint_args *ctx)
{
	return pl_skb((void *)ctx->args[0]);
}
#endif
