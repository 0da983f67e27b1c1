/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * pktlab_copy.h - for hooks that parse a COPY of what they see, in a per-CPU map value,
 * instead of packet memory the verifier lets them read directly:
 *
 *   kprobe          bpf_probe_read_kernel() from the sk_buff's linear part
 *   cgroup-ingress  bpf_skb_load_bytes() from the network header (cgroup_skb cannot pull a
 *                   paged skb into its linear part, and TCP payload arrives paged)
 *   socket-filter   bpf_skb_load_bytes() from the transport header (skb->data is refused)
 *   sk-skb          bpf_skb_load_bytes() from the payload
 *   recv            bpf_probe_read_user() from the application's buffer
 *
 * Include it BEFORE pktlab_common.h: the parser picks PL_CLAMP up at include time.
 *
 * The copy holds at most PL_KCOPY bytes; the mask PL_KMASK (larger than PL_KCOPY, so that a
 * cursor at the very end of a full copy is not wrapped to its start) keeps every cursor and
 * every copy length provably inside the buffer, which is larger than the mask by the largest
 * header read at a masked offset.
 */
#ifndef PKTLAB_COPY_H
#define PKTLAB_COPY_H

#define PL_KCOPY 2048         /* a 1500-byte MTU frame with two VLAN tags fits */
#define PL_KMASK 4095
#define PL_KMASK_STR "4095"
#define PL_KBUF (PL_KMASK + 1 + 512)

/* The cursor's pointer rebuilt from its offset, masked. The mask is an asm statement so that
 * LLVM cannot fold it into neighbouring arithmetic: the verifier must see the AND right before
 * the pointer is rebuilt. */
#define PL_CLAMP(nh)                                                              \
	do {                                                                      \
		__u64 __off = (nh)->off;                                          \
		asm volatile("%0 &= " PL_KMASK_STR : "+r"(__off));                \
		(nh)->pos = (nh)->start + __off;                                  \
	} while (0)

/* How many of `len` bytes to copy: at most PL_KCOPY, and provably at most PL_KMASK to the
 * verifier (a helper's size argument must be bounded by the buffer). A __u64 in a register. */
#define PL_COPY_LEN(len)                                                          \
	({                                                                        \
		__u64 __n = (len) < PL_KCOPY ? (len) : PL_KCOPY;                  \
		asm volatile("%0 &= " PL_KMASK_STR : "+r"(__n));                  \
		__n;                                                              \
	})

struct pl_kbuf {
	__u8 b[PL_KBUF];
};

#endif /* PKTLAB_COPY_H */
