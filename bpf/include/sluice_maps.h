/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Layout of every map shared between the kernel programs and the agent.
 * Each struct is defined once here; native/ asserts the sizes and the
 * TypeScript codecs (src/datapath/map-codecs.ts: one field table per struct)
 * are checked against the compiled object's BTF by a unit test, and the
 * counter names and flags against this header. Change a struct => bump
 * SLUICE_SCHEMA_VERSION, so pins of an incompatible layout are never reused.
 */
#ifndef SLUICE_MAPS_H
#define SLUICE_MAPS_H

#include <linux/types.h>

#define SLUICE_SCHEMA_VERSION 5

/* Addresses are 16 bytes everywhere; IPv4 is stored IPv4-mapped (::ffff:a.b.c.d). */

/* enrollment: key = netns cookie of an enrolled pod. */
struct sluice_enrollment {
	__u32 workload_id;  /* agent-local id, lets the proxy name the source pod */
	__u32 flags;        /* reserved */
};

/* services: one entry per (VIP, port, protocol). */
struct sluice_vip_key {
	__u8  addr[16];
	__u16 port;         /* network byte order */
	__u8  proto;        /* IPPROTO_TCP */
	__u8  pad;
};

struct sluice_vip_value {
	__u32 service_id;   /* agent-local id */
	__u32 flags;        /* SLUICE_VIP_F_* */
};

/* The service has no ready endpoint: connect() fails with ECONNREFUSED, as
 * kube-proxy's REJECT rule and Cilium's socket LB make it fail. */
#define SLUICE_VIP_F_NO_ENDPOINTS 1
/* A meshed pod's own address (key port 0: any port): a connect from an
 * enrolled pod straight to a pod IP goes through the node proxy too, so
 * authorization applies whatever address was dialled. */
#define SLUICE_VIP_F_WORKLOAD 2

/* Original destination, kept in socket-local storage from connect to close. */
struct sluice_orig_dst {
	__u8  addr[16];
	__u16 port;         /* network byte order */
	__u16 pad;
	__u32 service_id;
	__u64 netns_cookie; /* who opened the socket (cannot be forged by the pod) */
};

/* Tuple the proxy sees on accept: peer = pod, local = proxy address. */
struct sluice_tuple_key {
	__u8  src_addr[16];
	__u8  dst_addr[16];
	__u16 src_port;     /* network byte order */
	__u16 dst_port;     /* network byte order */
};

/* config: single-element array, written by the agent before attach. */
struct sluice_config {
	__u8  proxy_addr4[4];   /* node proxy IPv4 address */
	__u16 proxy_port;       /* network byte order */
	__u16 pad;
};

/* strict: key = ifindex of an enrolled pod's host-side interface (in the
 * node's netns). With an entry, a TCP SYN towards the pod is let through only
 * from allowed_saddr (the node's own address: the node proxy, the tunnel
 * endpoint, the kubelet); any other plaintext connection attempt is dropped. */
struct sluice_strict {
	__u8  allowed_saddr4[4];
	__u32 flags;        /* SLUICE_STRICT_F_* */
};

/* PERMISSIVE: let plaintext attempts in, but count them. */
#define SLUICE_STRICT_F_COUNT_ONLY 1

/* inbound: key = IPv4 address of an enrolled pod that authorization policy
 * selects under PERMISSIVE (network byte order). The program on the pod's own
 * interface (tc ingress, inside the pod's netns) hands every TCP SYN towards
 * the pod that does not come from allowed_saddr to the node proxy's listener
 * in that netns (listen_port), so that policy judges plaintext from outside
 * the mesh too. With an entry and no listener, the SYN is dropped: a pod that
 * policy protects never takes plaintext the proxy has not judged. */
struct sluice_inbound {
	__u8  allowed_saddr4[4];
	__u16 listen_port;  /* network byte order */
	__u16 pad;
};

/* Per-CPU counters, indexed by enum sluice_counter. */
enum sluice_counter {
	SLUICE_CTR_CONNECT_CAPTURED = 0,
	SLUICE_CTR_CONNECT_NOT_ENROLLED = 1,
	SLUICE_CTR_CONNECT_NO_VIP = 2,
	SLUICE_CTR_CONNECT_ERRORS = 3,
	SLUICE_CTR_TUPLE_RECORDED = 4,
	SLUICE_CTR_TUPLE_ERRORS = 5,
	SLUICE_CTR_PEERNAME_REWRITTEN = 6,
	SLUICE_CTR_CONNECT_NOT_TCP = 7,
	SLUICE_CTR_STRICT_DROPPED = 8,
	SLUICE_CTR_PLAINTEXT_ACCEPTED = 9,
	SLUICE_CTR_CONNECT_REFUSED_NO_ENDPOINTS = 10,
	SLUICE_CTR_INBOUND_REDIRECTED = 11,
	SLUICE_CTR_INBOUND_DROPPED = 12,
	SLUICE_CTR_MAX = 13,
};

#endif
