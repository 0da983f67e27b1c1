/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * pktlab_common.h - what every hook program shares besides the parser.
 *
 * The maps themselves (events, lost, seen) are declared in each <hook>.bpf.c and used only there:
 * bcc rewrites `map.method()` calls in the main file only, so a helper in this header that
 * touched a map would load as an unresolved call ("unknown opcode 8d").
 *
 * Python (pktlab/bpf.py) compiles each <hook>.bpf.c with:
 *   -DPL_RINGBUF_PAGES=N   ring buffer size in pages (power of two)
 *   -DPL_NO_RECORD         optional: count statuses instead of emitting records (the bench
 *                          prices the parse alone with it)
 */
#ifndef PKTLAB_COMMON_H
#define PKTLAB_COMMON_H

#include "pktlab_parse.h"

#ifndef PL_RINGBUF_PAGES
#define PL_RINGBUF_PAGES 256
#endif

/* Zeroes a record word by word. `volatile` keeps LLVM from turning the loop back into a
 * memset, which for 152 bytes it emits as a libcall BPF cannot make. */
PL_INLINE void pl_zero(struct pl_record *r)
{
	volatile __u64 *w = (volatile __u64 *)r;

#pragma unroll
	for (int i = 0; i < (int)(sizeof(*r) / 8); i++)
		w[i] = 0;
}

#endif /* PKTLAB_COMMON_H */
