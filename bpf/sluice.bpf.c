// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sluice capture programs, attached to the cgroup subtree of one node.
 *
 *   connect4/connect6  enrolled pod dials a known VIP:port -> remember the
 *                      original destination in socket storage, rewrite the
 *                      destination to the node proxy.
 *   sockops            once the source port is known (TCP_CONNECT_CB) copy
 *                      the record into the tuple map the proxy reads on
 *                      accept; delete it when the socket closes.
 *   getpeername4/6     the application sees the VIP it dialled.
 *   tc strict          (host side of a pod's interface) STRICT and PERMISSIVE
 *                      for plaintext connection attempts into the pod.
 *   tc inbound         (pod side) plaintext towards a pod that policy
 *                      protects goes to the node proxy's listener there.
 *
 * Everything not enrolled leaves after one hash lookup: these hooks run for
 * every connect() in the subtree.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/socket.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sluice_maps.h"

#define AF_INET 2
#define AF_INET6 10
#define TCP_CLOSE 7
#define SOCK_STREAM 1
#define TCP_SYN_SENT 2
#define ECONNREFUSED 111

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sluice_enrollment);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_enroll SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 262144);
	__type(key, struct sluice_vip_key);
	__type(value, struct sluice_vip_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sluice_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_orig SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 262144);
	__type(key, struct sluice_tuple_key);
	__type(value, struct sluice_orig_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_tuples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sluice_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct sluice_strict);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_strict SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct sluice_inbound);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_inbound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SLUICE_CTR_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} sluice_counters SEC(".maps");

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&sluice_counters, &idx);
	if (v)
		*v += 1;
}

static __always_inline void set_v4_mapped(__u8 *dst, __u32 addr_be)
{
	__builtin_memset(dst, 0, 10);
	dst[10] = 0xff;
	dst[11] = 0xff;
	__builtin_memcpy(dst + 12, &addr_be, 4);
}

/*
 * Common capture decision. addr16 is the destination as 16 bytes (IPv4
 * mapped for AF_INET). Returns the config to rewrite to, or NULL to leave the
 * connect alone.
 */
static __always_inline struct sluice_config *
capture(struct bpf_sock_addr *ctx, const __u8 *addr16, __u16 port_be, int *refuse)
{
	if (ctx->type != SOCK_STREAM) {
		count(SLUICE_CTR_CONNECT_NOT_TCP);
		return NULL;
	}

	__u64 cookie = bpf_get_netns_cookie(ctx);
	if (!bpf_map_lookup_elem(&sluice_enroll, &cookie)) {
		count(SLUICE_CTR_CONNECT_NOT_ENROLLED);
		return NULL;
	}

	struct sluice_vip_key key = {};
	__builtin_memcpy(key.addr, addr16, 16);
	key.port = port_be;
	key.proto = IPPROTO_TCP;
	struct sluice_vip_value *vip = bpf_map_lookup_elem(&sluice_vips, &key);
	if (!vip) {
		/* Not a service port: perhaps a meshed pod's own address. */
		key.port = 0;
		vip = bpf_map_lookup_elem(&sluice_vips, &key);
		if (!vip || !(vip->flags & SLUICE_VIP_F_WORKLOAD)) {
			count(SLUICE_CTR_CONNECT_NO_VIP);
			return NULL;
		}
	}
	if (vip->flags & SLUICE_VIP_F_NO_ENDPOINTS) {
		/* Refuse at connect, as a Service without endpoints does without a
		 * mesh: clients fail over on ECONNREFUSED, not on a later reset. */
		count(SLUICE_CTR_CONNECT_REFUSED_NO_ENDPOINTS);
		*refuse = 1;
		return NULL;
	}

	__u32 zero = 0;
	struct sluice_config *cfg = bpf_map_lookup_elem(&sluice_config, &zero);
	if (!cfg || !cfg->proxy_port) {
		count(SLUICE_CTR_CONNECT_ERRORS);
		return NULL;
	}

	struct bpf_sock *sk = ctx->sk;
	if (!sk) {
		count(SLUICE_CTR_CONNECT_ERRORS);
		return NULL;
	}
	struct sluice_orig_dst *orig = bpf_sk_storage_get(&sluice_orig, sk, 0,
							  BPF_SK_STORAGE_GET_F_CREATE);
	if (!orig) {
		count(SLUICE_CTR_CONNECT_ERRORS);
		return NULL;
	}
	__builtin_memcpy(orig->addr, addr16, 16);
	orig->port = port_be;
	orig->service_id = vip->service_id;
	orig->netns_cookie = cookie;

	count(SLUICE_CTR_CONNECT_CAPTURED);
	return cfg;
}

SEC("cgroup/connect4")
int sluice_connect4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16];
	set_v4_mapped(addr, ctx->user_ip4);
	int refuse = 0;
	struct sluice_config *cfg = capture(ctx, addr, (__u16)ctx->user_port, &refuse);
	if (refuse) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (!cfg)
		return 1;
	__u32 proxy;
	__builtin_memcpy(&proxy, cfg->proxy_addr4, 4);
	ctx->user_ip4 = proxy;
	ctx->user_port = cfg->proxy_port;
	return 1;
}

SEC("cgroup/connect6")
int sluice_connect6(struct bpf_sock_addr *ctx)
{
	/* Only IPv4-mapped destinations: the node proxy listens on IPv4. */
	if (ctx->user_ip6[0] != 0 || ctx->user_ip6[1] != 0 ||
	    ctx->user_ip6[2] != bpf_htonl(0x0000ffff))
		return 1;
	__u8 addr[16];
	set_v4_mapped(addr, ctx->user_ip6[3]);
	int refuse = 0;
	struct sluice_config *cfg = capture(ctx, addr, (__u16)ctx->user_port, &refuse);
	if (refuse) {
		bpf_set_retval(-ECONNREFUSED);
		return 0;
	}
	if (!cfg)
		return 1;
	__u32 proxy;
	__builtin_memcpy(&proxy, cfg->proxy_addr4, 4);
	ctx->user_ip6[3] = proxy;
	ctx->user_port = cfg->proxy_port;
	return 1;
}

static __always_inline void tuple_of(struct bpf_sock_ops *skops, struct sluice_tuple_key *key)
{
	/* Captured sockets always talk IPv4 to the proxy (connect6 only takes
	 * IPv4-mapped destinations), so the v4 fields are valid for both families. */
	set_v4_mapped(key->src_addr, skops->local_ip4);
	set_v4_mapped(key->dst_addr, skops->remote_ip4);
	key->src_port = bpf_htons((__u16)skops->local_port);
	key->dst_port = bpf_htons((__u16)bpf_ntohl(skops->remote_port));
}

SEC("sockops")
int sluice_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	if (!sk)
		return 1;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB: {
		struct sluice_orig_dst *orig = bpf_sk_storage_get(&sluice_orig, sk, 0, 0);
		if (!orig)
			return 1;
		struct sluice_tuple_key key = {};
		tuple_of(skops, &key);
		if (bpf_map_update_elem(&sluice_tuples, &key, orig, BPF_ANY)) {
			count(SLUICE_CTR_TUPLE_ERRORS);
			return 1;
		}
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
					  BPF_SOCK_OPS_STATE_CB_FLAG);
		count(SLUICE_CTR_TUPLE_RECORDED);
		return 1;
	}
	case BPF_SOCK_OPS_STATE_CB:
		/* Only a connect that never got through drops its record here. An
		 * established one keeps it after close: the proxy may not have
		 * accepted it yet, and the bytes the client wrote before closing
		 * are still queued for it. The proxy consumes the record on
		 * accept; what is never accepted ages out of the LRU map. */
		if (skops->args[1] == TCP_CLOSE && skops->args[0] == TCP_SYN_SENT) {
			struct sluice_tuple_key key = {};
			tuple_of(skops, &key);
			bpf_map_delete_elem(&sluice_tuples, &key);
		}
		return 1;
	}
	return 1;
}

static __always_inline struct sluice_orig_dst *orig_of(struct bpf_sock_addr *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return NULL;
	return bpf_sk_storage_get(&sluice_orig, sk, 0, 0);
}

SEC("cgroup/getpeername4")
int sluice_getpeername4(struct bpf_sock_addr *ctx)
{
	struct sluice_orig_dst *orig = orig_of(ctx);
	if (!orig)
		return 1;
	__u32 addr;
	__builtin_memcpy(&addr, orig->addr + 12, 4);
	ctx->user_ip4 = addr;
	ctx->user_port = orig->port;
	count(SLUICE_CTR_PEERNAME_REWRITTEN);
	return 1;
}

SEC("cgroup/getpeername6")
int sluice_getpeername6(struct bpf_sock_addr *ctx)
{
	struct sluice_orig_dst *orig = orig_of(ctx);
	if (!orig)
		return 1;
	__u32 addr;
	__builtin_memcpy(&addr, orig->addr + 12, 4);
	ctx->user_ip6[3] = addr;
	ctx->user_port = orig->port;
	count(SLUICE_CTR_PEERNAME_REWRITTEN);
	return 1;
}

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

/* A fragment of a larger IP packet (first or later): its TCP header may be
 * missing or cut, and the pod's stack reassembles it after tc has run. */
static __always_inline int is_fragment(const struct iphdr *ip)
{
	return (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET)) != 0;
}

/* The IPv4 header of an Ethernet frame carrying TCP, bounds-checked, or NULL
 * for anything else (other protocols pass both tc programs untouched). */
static __always_inline struct iphdr *ipv4_tcp_header(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return NULL;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_TCP)
		return NULL;
	return ip;
}

/*
 * PeerAuthentication STRICT (and PERMISSIVE, counted), on the egress of an enrolled pod's host-side
 * interface (packets about to enter the pod). Only connection attempts are
 * judged (SYN without ACK): replies to the pod's own connections and
 * established flows pass untouched. IPv4 only, like the rest of the sim.
 */
SEC("tc")
int sluice_strict_ingress(struct __sk_buff *skb)
{
	__u32 ifindex = skb->ifindex;
	struct sluice_strict *st = bpf_map_lookup_elem(&sluice_strict, &ifindex);
	if (!st)
		return TC_ACT_OK;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = ipv4_tcp_header(skb);
	if (!ip)
		return TC_ACT_OK;
	__u32 allowed;
	__builtin_memcpy(&allowed, st->allowed_saddr4, 4);
	struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
	if (is_fragment(ip) || (void *)(tcp + 1) > end) {
		/* A TCP header we cannot judge (a fragment: reassembled only
		 * inside the pod) must not carry a SYN past STRICT. */
		if (ip->saddr == allowed || (st->flags & SLUICE_STRICT_F_COUNT_ONLY))
			return TC_ACT_OK;
		count(SLUICE_CTR_STRICT_DROPPED);
		return TC_ACT_SHOT;
	}
	if (!tcp->syn || tcp->ack)
		return TC_ACT_OK;
	if (ip->saddr == allowed)
		return TC_ACT_OK;
	if (st->flags & SLUICE_STRICT_F_COUNT_ONLY) {
		count(SLUICE_CTR_PLAINTEXT_ACCEPTED);
		return TC_ACT_OK;
	}
	count(SLUICE_CTR_STRICT_DROPPED);
	return TC_ACT_SHOT;
}

/*
 * Inbound plaintext under authorization policy, on the ingress of an enrolled
 * pod's own interface (inside its netns): a connection attempt towards a pod
 * with an entry in sluice_inbound, from anyone but the node's own address, is
 * assigned to the node proxy's listener in the pod's netns (bpf_sk_assign,
 * as a TPROXY rule would). The accepted socket keeps the address and port
 * the client dialled, so the proxy knows the destination, judges the
 * connection by policy and connects on to the pod from the node's address.
 * Later segments of a flow find their socket by the kernel's normal lookup;
 * a segment with no socket of its own (a SYN-cookie ACK, a stray) goes to
 * the listener too, so no handshake can complete on the pod's own listener.
 * Fragments towards such a pod are dropped: their TCP header is judged only
 * after reassembly, past this program. No listener (the agent restarting):
 * dropped, and the client's SYN retransmission finds the next listener.
 */
static __always_inline int inbound_to_listener(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
					       __be16 listen_port)
{
	tuple->ipv4.dport = listen_port;
	struct bpf_sock *sk = bpf_sk_lookup_tcp(skb, tuple, sizeof(tuple->ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk) {
		count(SLUICE_CTR_INBOUND_DROPPED);
		return TC_ACT_SHOT;
	}
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		count(SLUICE_CTR_INBOUND_DROPPED);
		return TC_ACT_SHOT;
	}
	long err = bpf_sk_assign(skb, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		count(SLUICE_CTR_INBOUND_DROPPED);
		return TC_ACT_SHOT;
	}
	count(SLUICE_CTR_INBOUND_REDIRECTED);
	return TC_ACT_OK;
}

SEC("tc")
int sluice_inbound_redirect(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct iphdr *ip = ipv4_tcp_header(skb);
	if (!ip)
		return TC_ACT_OK;
	__u32 daddr = ip->daddr;
	struct sluice_inbound *in = bpf_map_lookup_elem(&sluice_inbound, &daddr);
	if (!in)
		return TC_ACT_OK;
	__u32 allowed;
	__builtin_memcpy(&allowed, in->allowed_saddr4, 4);
	if (ip->saddr == allowed)
		return TC_ACT_OK;
	if (is_fragment(ip)) {
		count(SLUICE_CTR_INBOUND_DROPPED);
		return TC_ACT_SHOT;
	}
	__u32 l4 = sizeof(struct ethhdr) + ip->ihl * 4;
	if (l4 + sizeof(struct tcphdr) > (__u32)(end - data)) {
		/* Headers beyond the linear part: pull them in, then look again. */
		if (bpf_skb_pull_data(skb, l4 + sizeof(struct tcphdr)))
			return TC_ACT_SHOT;
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		ip = data + sizeof(struct ethhdr);
		if ((void *)(ip + 1) > end)
			return TC_ACT_SHOT;
	}
	struct tcphdr *tcp = (void *)ip + ip->ihl * 4;
	if ((void *)(tcp + 1) > end)
		return TC_ACT_SHOT;
	struct bpf_sock_tuple tuple = {};
	tuple.ipv4.saddr = ip->saddr;
	tuple.ipv4.sport = tcp->source;
	tuple.ipv4.daddr = ip->daddr;
	tuple.ipv4.dport = tcp->dest;
	__be16 listen_port = in->listen_port;
	if (tcp->syn && !tcp->ack)
		return inbound_to_listener(skb, &tuple, listen_port);
	/* Not a new connection: its own socket (established, half-open, the pod's
	 * own outgoing connection) takes it, or the proxy's listener does. */
	struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &tuple, sizeof(tuple.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (sk) {
		int state = sk->state;
		bpf_sk_release(sk);
		if (state != BPF_TCP_LISTEN)
			return TC_ACT_OK;
	}
	return inbound_to_listener(skb, &tuple, listen_port);
}
