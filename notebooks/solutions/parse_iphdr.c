/* Lesson 02 exercise: parse_iphdr as in bpf_snippets/pktlab_parse.h (a solution).
 * Paste it into the exercise cell's string, between the triple quotes. */
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
