/* The kernel types the probes read, trimmed to the fields they use.
 *
 * Why not a full vmlinux.h: the object is committed and checked to be
 * current (capture/ebpf/build.sh), so its inputs must not depend on the
 * machine that builds it; a vmlinux.h dumped from the build machine's
 * kernel would. These definitions carry preserve_access_index, so every
 * field access below becomes a CO-RE relocation that the loader (aya)
 * resolves against the running kernel's BTF (/sys/kernel/btf/vmlinux) by
 * type and field name: offsets here are only placeholders, and fields the
 * kernel nests in anonymous unions are found there.
 *
 * The tracepoint records (trace_event_raw_*) are the TP_STRUCT__entry of
 * include/trace/events/{sched,sock,tcp,skb}.h and the syscall records of
 * kernel/trace/trace_syscalls.c. */
#ifndef CAPSNAP_KERNEL_H
#define CAPSNAP_KERNEL_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef int pid_t;

/* bpf_helper_defs.h names these. */
struct bpf_map_def;
struct __sk_buff;
struct xdp_md;
struct sk_msg_md;
struct bpf_sock_ops;
struct bpf_perf_event_data;
struct pt_regs;

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
};

/* Named as the kernel names them: CO-RE matches an enum field by the
 * enum's name. Their values are read from tracefs, not from here. */
enum skb_drop_reason {
	SKB_DROP_REASON_NOT_SPECIFIED__placeholder = 0,
};

enum sk_rst_reason {
	SK_RST_REASON_NOT_SPECIFIED__placeholder = 0,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct nsproxy {
	struct net *net_ns;
};

struct mm_struct {
	unsigned long start_stack;
};

struct task_struct {
	pid_t tgid;
	struct task_struct *real_parent;
	char comm[16];
	struct mm_struct *mm;
	struct nsproxy *nsproxy;
};

struct sock_common {
	volatile unsigned char skc_state;
	possible_net_t skc_net;
};

struct sock {
	struct sock_common __sk_common;
};

struct net_device {
	int ifindex;
	possible_net_t nd_net;
};

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	__u16 network_header;
	unsigned char *head;
};

struct trace_entry {
	unsigned short type;
	unsigned char flags;
	unsigned char preempt_count;
	int pid;
};

struct trace_event_raw_sched_process_exec {
	struct trace_entry ent;
	__u32 __data_loc_filename;
	pid_t pid;
	pid_t old_pid;
};

struct trace_event_raw_inet_sock_set_state {
	struct trace_entry ent;
	const void *skaddr;
	int oldstate;
	int newstate;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u16 protocol;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* tcp_receive_reset (class tcp_event_sk). */
struct trace_event_raw_tcp_event_sk {
	struct trace_entry ent;
	const void *skaddr;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* tcp_retransmit_skb: an event of its own since 6.12 (it gained "err"),
 * of class tcp_event_sk_skb before. */
struct trace_event_raw_tcp_retransmit_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct trace_event_raw_tcp_event_sk_skb {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

struct trace_event_raw_tcp_retransmit_synack {
	struct trace_entry ent;
	const void *skaddr;
	const void *req;
	__u16 sport;
	__u16 dport;
	__u16 family;
	__u8 saddr[4];
	__u8 daddr[4];
	__u8 saddr_v6[16];
	__u8 daddr_v6[16];
};

/* tcp_send_reset in the shape with sockaddrs and a reason (6.10+). */
struct trace_event_raw_tcp_send_reset {
	struct trace_entry ent;
	const void *skbaddr;
	const void *skaddr;
	int state;
	enum sk_rst_reason reason;
	__u8 saddr[28];
	__u8 daddr[28];
};

struct trace_event_raw_kfree_skb {
	struct trace_entry ent;
	void *skbaddr;
	void *location;
	unsigned short protocol;
	enum skb_drop_reason reason;
};

struct trace_event_raw_sys_enter {
	struct trace_entry ent;
	long id;
	unsigned long args[6];
};

struct trace_event_raw_sys_exit {
	struct trace_entry ent;
	long id;
	long ret;
};

#pragma clang attribute pop

/* Packet headers (include/uapi/linux/ip.h, ipv6.h): plain layouts, no
 * relocation. */
struct iphdr {
	__u8 ihl_version;
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr {
	__u8 priority_version;
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

#endif
