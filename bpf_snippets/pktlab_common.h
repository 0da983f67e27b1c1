/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * pktlab_common.h - what every hook program shares besides the parser: the record transport
 * (a per-CPU slot ring that Python reads straight from memory), the status counters and the
 * timestamp.
 *
 * The transport, and why it is not a BPF ring buffer: every helper call costs here (the
 * mitigations on this kind of VM make each kernel `ret` expensive: ~15 ns per call), and
 * bpf_ringbuf_reserve + bpf_ringbuf_submit are two calls plus a spinlock. These maps are plain
 * arrays (BPF_F_MMAPABLE) whose lookups the verifier inlines, so reserving a slot is a few
 * loads and stores:
 *
 *   ctl[cpu]     struct pl_ctl (pktlab_record.h): head (records written), lost (no free slot), seen[status],
 *                on the kernel's cache line; tail (records Python consumed) on its own line
 *   events[cpu * PL_SLOTS + head % PL_SLOTS]
 *                the record itself
 *
 * One writer per CPU and slot ring: a program runs to its end on the CPU it started on. On a
 * live hook (XDP, TC, the receive tracepoint: softirq, or bottom halves off) two runs of one
 * program never interleave on a CPU; a BPF_PROG_TEST_RUN, though, runs with only migration
 * disabled, so a packet's softirq can run the same (attached) program in the middle of it.
 * `busy` guards that: a run that finds the ring busy refuses its record and counts it in
 * `lost`. The writer fills the slot, then publishes head; the reader (pktlab/ringbuf.py) reads
 * head, copies the slots up to it, then publishes tail. A full ring refuses the new record and
 * counts it in `lost`: nothing is overwritten, so a record Python reads is never torn. The
 * ordering relies on x86-64's store order (TSO) plus a compiler barrier (pktlab refuses other
 * architectures; arm64 would need a release store and an acquiring read).
 *
 * The maps are declared by PL_DECLARE_MAPS() in each <hook>.bpf.c, and every map method call
 * stays in the main file: bcc rewrites `map.method()` calls only there (a helper in this
 * header that called one would load as an unresolved call, "unknown opcode 8d").
 *
 * Python (pktlab/bpf.py) compiles each <hook>.bpf.c with:
 *   -DPL_NCPUS=N        possible CPUs (the rings are per CPU)
 *   -DPL_SLOTS=N        records per CPU ring (power of two)
 *   -DPL_TS_PRECISE     optional: ts_ns from bpf_ktime_get_ns() (a helper call) instead of
 *                       jiffies (an inlined load, 1/HZ resolution)
 *   -DPL_JIFFY_NS=N     nanoseconds per jiffy (1e9 / HZ of the running kernel)
 *   -DPL_NO_RECORD      optional: count statuses instead of emitting records (the bench
 *                       prices the parse alone with it)
 * and the learner loader (pktlab/kernel/loader.py) adds -DPL_NO_PERFMON (and -DPL_PROG_XDP
 * for XDP): the build a program loaded without CAP_PERFMON needs (pktlab_parse.h).
 */
#ifndef PKTLAB_COMMON_H
#define PKTLAB_COMMON_H

#include "pktlab_parse.h"

/* No defaults: Python reads the rings with the sizes it compiled in (bpf.transport_cflags). */
#if !defined(PL_NCPUS) || !defined(PL_SLOTS) || !defined(PL_JIFFY_NS)
#error "compile with -DPL_NCPUS, -DPL_SLOTS and -DPL_JIFFY_NS (pktlab/bpf.py transport_cflags)"
#endif

/* A program that emits no records keeps one slot (maps cannot be empty). */
#ifdef PL_NO_RECORD
#define PL_EVENTS_ENTRIES 1
#else
#define PL_EVENTS_ENTRIES (PL_NCPUS * PL_SLOTS)
#endif

#define PL_DECLARE_MAPS()                                                                 \
	BPF_F_TABLE("array", u32, struct pl_record, events, PL_EVENTS_ENTRIES,           \
		    BPF_F_MMAPABLE);                                                          \
	BPF_F_TABLE("array", u32, struct pl_ctl, ctl, PL_NCPUS, BPF_F_MMAPABLE)

#define pl_barrier() asm volatile("" ::: "memory")

/* The record's timestamp: see PL_TS_PRECISE above (Python knows which it compiled). */
#ifdef PL_TS_PRECISE
#define pl_now() bpf_ktime_get_ns()
#else
#define pl_now() (bpf_jiffies64() * (__u64)PL_JIFFY_NS)
#endif

/* Zeroes a record word by word. `volatile` keeps LLVM from turning the loop back into a
 * memset, which for a record's size it emits as a libcall BPF cannot make. */
PL_INLINE void pl_zero(struct pl_record *r)
{
	volatile __u64 *w = (volatile __u64 *)r;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*r) / 8); i++)
		w[i] = 0;
}

/* *slot = the free slot of this CPU's ring and 0; or -1 (counted in c->lost) when the ring is
 * full or another run on this CPU is writing. On success the ring is busy until
 * pl_commit/pl_abort. The caller looks the slot up in `events` (a map call: main file only). */
PL_INLINE int pl_slot(struct pl_ctl *c, __u32 cpu, __u32 *slot)
{
	__u64 head = c->head;

	if (c->busy || head - *(volatile __u64 *)&c->tail >= PL_SLOTS) {
		c->lost++;
		return -1;
	}
	c->busy = 1;
	pl_barrier();
	*slot = cpu * PL_SLOTS + (head & (PL_SLOTS - 1));
	return 0;
}

/* A fresh record in its slot: zeroed, then what only a record needs before the parse (the
 * timestamp). */
PL_INLINE void pl_begin(struct pl_record *r)
{
	pl_zero(r);
	r->ts_ns = pl_now();
}

/* After the parse: the fingerprint of the `len`-byte frame whose readable bytes are
 * data..data_end, over every byte the parse read (parse_end, read back from the record: one
 * unknown bound for the verifier whatever path the parse took). */
PL_INLINE void pl_identify(struct pl_record *r, void *data, void *data_end, __u32 len)
{
	r->fingerprint = pl_fingerprint(data, data_end, len, *(volatile __u16 *)&r->parse_end);
}

/* Publish the record just written: the slot's bytes first, then head. */
PL_INLINE void pl_commit(struct pl_ctl *c)
{
	pl_barrier();
	*(volatile __u64 *)&c->head = c->head + 1;
	c->busy = 0;
}

/* Give the slot back unused. */
PL_INLINE void pl_abort(struct pl_ctl *c)
{
	c->lost++;
	c->busy = 0;
}

#ifdef PL_NO_PERFMON
/* c->seen[i]++ at a constant offset, where LLVM cannot turn a chain of them back into one
 * indexed by the status (see pl_count) */
#define PL_SEEN_INC(c, i)                                                                 \
	do {                                                                              \
		__u64 __t;                                                                \
		asm volatile("%0 = *(u64 *)(%1 + %2)\n\t%0 += 1\n\t*(u64 *)(%1 + %2) = %0"  \
			     : "=&r"(__t)                                                 \
			     : "r"(c), "i"(__builtin_offsetof(struct pl_ctl, seen) + 8 * (i))  \
			     : "memory");                                                 \
	} while (0)
#endif

PL_INLINE void pl_count(struct pl_ctl *c, __u8 status)
{
#ifndef PL_NO_PERFMON
	if (status < PL_ST__COUNT)
		c->seen[status]++;
#else
	/* Constant offsets. Under the learner loader a map value pointer moved by the status
	 * (seen + status), anywhere in the program, made the verifier keep the TCP option walk's
	 * paths apart (a million instructions, "too large"). */
#pragma unroll
	for (int i = 0; i < PL_ST__COUNT; i++)
		if (status == i)
			PL_SEEN_INC(c, i);
#endif
}

#endif /* PKTLAB_COMMON_H */
