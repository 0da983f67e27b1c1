/* Lesson 02 exercise: parse_ethhdr as in bpf_snippets/pktlab_parse.h (a solution).
 * Paste it into the exercise cell's string, between the triple quotes. */
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
