/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * recv.bpf.c - the pktlab parse at recv: the bytes the application got, where it receives
 * them. Tracepoints, so the hook is global: it records only threads of the lab's dut network
 * namespace (config[0]: its netns cookie).
 *
 *   sys_enter_{recvfrom,read,recvmsg}  a thread of the lab's namespace starts a receive: save
 *                                      the user buffer it names, per thread (pending)
 *   sock:sock_recv_length              inside sock_recvmsg, for every socket receive: marks
 *                                      the saved receive as a socket's (a read() of a file or
 *                                      pipe never gets here, so it is never recorded), with the
 *                                      socket's protocol. Alone it gives only a length.
 *   sys_exit_{recvfrom,read,recvmsg}   ret > 0 and marked: copy the first bytes the application
 *                                      got from its buffer (bpf_probe_read_user, pktlab_copy.h)
 *                                      and parse them entered at PL_ENTRY_PAYLOAD; the record is
 *                                      stamped at the syscall's exit
 *
 * The namespace test reads current->nsproxy->net_ns->net_cookie with bpf_probe_read_kernel at
 * offsets from the running kernel's BTF (-DPL_OFF_TASK_NSPROXY, -DPL_OFF_NSPROXY_NET,
 * -DPL_OFF_NET_COOKIE): tracepoint programs may not call bpf_get_netns_cookie. The tracepoints'
 * field offsets come from their tracefs format files (-DPL_TP_*), not from a header.
 *
 * One writer per CPU ring: a syscall tracepoint may run in a preemptible context, and a second
 * run on the same CPU finds the ring busy; its record is refused and counted in `lost`.
 */
#include <uapi/linux/bpf.h>
#include "pktlab_copy.h"
#include "pktlab_common.h"

#define PL_SYS_RECVFROM 0
#define PL_SYS_READ 1
#define PL_SYS_RECVMSG 2

/* user-space ABI (stable uapi, 64-bit): only the fields read here */
struct pl_msghdr {
	__u64 msg_name;
	__u32 msg_namelen;
	__u32 _pad;
	__u64 msg_iov;
};

struct pl_iovec {
	__u64 iov_base;
	__u64 iov_len;
};

struct pl_pending {
	__u64 buf;        /* user pointer where the bytes land */
	__u64 size;       /* how many bytes fit there */
	__u32 sock;       /* sock_recv_length seen: a socket receive */
	__u32 proto;      /* the socket's protocol (IPPROTO_TCP, IPPROTO_UDP) */
};

PL_DECLARE_MAPS();
BPF_PERCPU_ARRAY(scratch, struct pl_kbuf, 1);
BPF_HASH(pending, __u64, struct pl_pending, 1024);
BPF_ARRAY(config, __u64, 1);       /* [0]: the netns cookie whose threads are recorded */

#define PL_TP(ctx, type, off) (*(type *)((char *)(ctx) + (off)))

static __always_inline int pl_in_lab(void)
{
	__u64 task = bpf_get_current_task(), nsproxy = 0, net = 0, cookie = 0;
	__u32 k = 0;
	__u64 *want = config.lookup(&k);

	if (!want || !*want)
		return 0;
	bpf_probe_read_kernel(&nsproxy, sizeof(nsproxy), (void *)(task + PL_OFF_TASK_NSPROXY));
	if (!nsproxy)            /* an exiting task has none */
		return 0;
	bpf_probe_read_kernel(&net, sizeof(net), (void *)(nsproxy + PL_OFF_NSPROXY_NET));
	if (!net)
		return 0;
	bpf_probe_read_kernel(&cookie, sizeof(cookie), (void *)(net + PL_OFF_NET_COOKIE));
	return cookie == *want;
}

static __always_inline void pl_enter(__u64 buf, __u64 size)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pl_pending p = {.buf = buf, .size = size};

	if (pl_in_lab())
		pending.update(&id, &p);
}

int pktlab_recv_enter_recvfrom(void *ctx)
{
	pl_enter(PL_TP(ctx, __u64, PL_TP_RECVFROM_UBUF), PL_TP(ctx, __u64, PL_TP_RECVFROM_SIZE));
	return 0;
}

int pktlab_recv_enter_read(void *ctx)
{
	pl_enter(PL_TP(ctx, __u64, PL_TP_READ_BUF), PL_TP(ctx, __u64, PL_TP_READ_COUNT));
	return 0;
}

int pktlab_recv_enter_recvmsg(void *ctx)
{
	/* the bytes land in msg->msg_iov[0].iov_base (the first iovec only) */
	struct pl_msghdr m = {};
	struct pl_iovec iov = {};
	void *msg = (void *)PL_TP(ctx, __u64, PL_TP_RECVMSG_MSG);

	if (bpf_probe_read_user(&m, sizeof(m), msg) == 0 && m.msg_iov &&
	    bpf_probe_read_user(&iov, sizeof(iov), (void *)m.msg_iov) == 0)
		pl_enter(iov.iov_base, iov.iov_len);
	return 0;
}

int pktlab_recv_sock(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pl_pending *p = pending.lookup(&id);

	if (p) {
		p->sock = 1;
		p->proto = PL_TP(ctx, __u16, PL_TP_SOCK_PROTOCOL);
	}
	return 0;
}

int pktlab_recv_exit(void *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	long ret = PL_TP(ctx, long, PL_TP_EXIT_RET);
	__u32 cpu = bpf_get_smp_processor_id(), key = 0, slot;
	struct pl_pending *p = pending.lookup(&id);
	struct pl_kbuf *buf = scratch.lookup(&key);
	struct pl_ctl *c = ctl.lookup(&cpu);
	struct pl_record *r;
	__u64 copy;

	if (!p)
		goto out;
	if (!p->sock || ret <= 0 || !buf || !c)
		goto done;
	copy = PL_COPY_LEN((__u64)ret < p->size ? (__u64)ret : p->size);
	if (bpf_probe_read_user(buf->b, copy, (void *)p->buf) < 0)
		goto done;
	if (pl_slot(c, cpu, &slot))
		goto done;
	r = events.lookup(&slot);
	if (!r) {
		pl_abort(c);
		goto done;
	}
	pl_begin(r);
	r->hook = PL_HOOK_RECV;
	r->frame_len = ret;
	pl_parse_at(buf->b, buf->b + copy, r, PL_ENTRY_PAYLOAD, p->proto);
	pl_count(c, r->status);
	pl_identify(r, buf->b, buf->b + copy, ret);
	pl_commit(c);
done:
	pending.delete(&id);
out:
	return 0;
}
