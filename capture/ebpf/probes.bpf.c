// SPDX-License-Identifier: GPL-2.0
/* capsnap's probes as one CO-RE object: the same tracepoints and the same
 * facts as the capture/bpftrace probe files (each section below names its .bt file,
 * which says why that tracepoint), sent as fixed records through one BPF
 * ring buffer (BPF_MAP_TYPE_RINGBUF, kernel 5.8+) that capsnap turns into
 * the same events.jsonl lines (capture/src/ebpf/core.rs).
 *
 * Records that do not fit the ring are counted in `lost` (one counter per
 * CPU): capsnap reports them as bpftrace's "Lost N events" lines.
 *
 * Rebuild with capture/ebpf/build.sh; the object is committed. GPL: the
 * helpers that read kernel memory (bpf_probe_read_kernel) are GPL-only. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

char LICENSE[] SEC("license") = "GPL";

/* Record kinds, and the layouts capsnap reads (core.rs keeps the same
 * numbers and offsets; the static asserts below pin them). */
#define K_EXEC 1
#define K_TCP_STATE 2
#define K_RETRANSMIT 3
#define K_RETRANSMIT_SYNACK 4
#define K_RESET_RECEIVED 5
#define K_RESET_SENT 6
#define K_DROP 7
#define K_CONNECT_ERROR 8

#define STRLEN 64 /* formats::bpftrace::STRLEN: strings cut at 63 bytes */
#define ARGS 4    /* argv[0..3], as exec.bt prints */

struct hdr {
	__u64 ts_ns; /* bpf_ktime_get_boot_ns(): CLOCK_BOOTTIME */
	__u32 kind;
	__u32 pid; /* tgid of the current task */
	__u32 netns;
	__u32 pad;
};

struct net_event {
	struct hdr h;
	__u64 sk;
	__u64 location;
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family; /* AF_INET 2, AF_INET6 10, 0: not IP */
	__u16 sport;
	__u16 dport;
	__u16 ip_proto;
	__s32 a; /* oldstate, state, reason */
	__s32 b; /* newstate */
	__s32 ifindex;
	__u32 ethertype;
	__s64 ret;
	char comm[16];
};

struct exec_event {
	struct hdr h;
	__u32 old_pid;
	__u32 ppid;
	__u32 uid;
	__u32 argc;
	char comm[16];
	char pcomm[16];
	char filename[STRLEN];
	char argv[ARGS][STRLEN];
};

_Static_assert(sizeof(struct hdr) == 24, "hdr layout");
_Static_assert(sizeof(struct net_event) == 120, "net_event layout");
_Static_assert(sizeof(struct exec_event) == 392, "exec_event layout");

/* The lowest drop reason that is printed is the one above this:
 * SKB_DROP_REASON_NOT_SPECIFIED, whose value capsnap reads from this
 * kernel's tracepoint format (see drop.bt). */
volatile const __u32 drop_min = 2;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* connect(2) destinations by thread, from sys_enter to sys_exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} connect_addr SEC(".maps");

static __always_inline void *reserve(__u64 size)
{
	void *e = bpf_ringbuf_reserve(&events, size, 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return e;
}

static __always_inline void fill_hdr(struct hdr *h, __u32 kind, __u32 netns)
{
	h->ts_ns = bpf_ktime_get_boot_ns();
	h->kind = kind;
	h->pid = bpf_get_current_pid_tgid() >> 32;
	h->netns = netns;
	h->pad = 0;
}

static __always_inline __u32 task_netns(struct task_struct *t)
{
	return BPF_CORE_READ(t, nsproxy, net_ns, ns.inum);
}

static __always_inline __u32 sk_netns(const void *skaddr)
{
	const struct sock *sk = skaddr;
	return BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
}

static __always_inline struct net_event *net_event(__u32 kind, __u32 netns)
{
	struct net_event *e = reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->h, kind, netns);
	return e;
}

/* Addresses of the TCP tracepoints (TP_STORE_ADDRS, include/trace/events/tcp.h). */
#define COPY_ADDRS(e, ctx)                                                      \
	do {                                                                    \
		(e)->family = BPF_CORE_READ(ctx, family);                       \
		(e)->sport = BPF_CORE_READ(ctx, sport);                         \
		(e)->dport = BPF_CORE_READ(ctx, dport);                         \
		if ((e)->family == 2) {                                         \
			bpf_core_read(&(e)->saddr, 4, &(ctx)->saddr);           \
			bpf_core_read(&(e)->daddr, 4, &(ctx)->daddr);           \
		} else {                                                        \
			bpf_core_read(&(e)->saddr, 16, &(ctx)->saddr_v6);       \
			bpf_core_read(&(e)->daddr, 16, &(ctx)->daddr_v6);       \
		}                                                               \
	} while (0)

/* exec.bt */
SEC("tracepoint/sched/sched_process_exec")
int capsnap_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct exec_event *e = reserve(sizeof(*e));
	if (!e)
		return 0;
	__builtin_memset(e, 0, sizeof(*e));
	fill_hdr(&e->h, K_EXEC, task_netns(task));
	e->old_pid = BPF_CORE_READ(ctx, old_pid);
	e->ppid = BPF_CORE_READ(task, real_parent, tgid);
	e->uid = (__u32)bpf_get_current_uid_gid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	BPF_CORE_READ_STR_INTO(&e->pcomm, task, real_parent, comm);
	/* __data_loc: offset in the low 16 bits, from the record's start. */
	__u32 loc = BPF_CORE_READ(ctx, __data_loc_filename);
	bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), (void *)ctx + (loc & 0xffff));
	/* argc and argv from the new program's stack (see exec.bt); pointers
	 * past argc are never read, so envp cannot leak. */
	unsigned long sp = BPF_CORE_READ(task, mm, start_stack);
	__u64 argc = 0;
	bpf_probe_read_user(&argc, sizeof(argc), (void *)sp);
	e->argc = argc;
	for (int i = 0; i < ARGS; i++) {
		if (i >= argc)
			break;
		__u64 p = 0;
		bpf_probe_read_user(&p, sizeof(p), (void *)(sp + 8 * (i + 1)));
		bpf_probe_read_user_str(e->argv[i], STRLEN, (void *)p);
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* tcp_state.bt (its connect lines are made from these by capsnap) */
SEC("tracepoint/sock/inet_sock_set_state")
int capsnap_tcp_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (BPF_CORE_READ(ctx, protocol) != 6)
		return 0;
	const void *skaddr = BPF_CORE_READ(ctx, skaddr);
	struct net_event *e = net_event(K_TCP_STATE, sk_netns(skaddr));
	if (!e)
		return 0;
	e->sk = (__u64)skaddr;
	COPY_ADDRS(e, ctx);
	e->a = BPF_CORE_READ(ctx, oldstate);
	e->b = BPF_CORE_READ(ctx, newstate);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* retransmit.bt: the record is tcp_retransmit_skb since 6.12, of class
 * tcp_event_sk_skb before; whichever this kernel has. */
SEC("tracepoint/tcp/tcp_retransmit_skb")
int capsnap_retransmit(void *raw)
{
	const void *skaddr;
	struct net_event *e;
	if (bpf_core_type_exists(struct trace_event_raw_tcp_retransmit_skb)) {
		struct trace_event_raw_tcp_retransmit_skb *ctx = raw;
		skaddr = BPF_CORE_READ(ctx, skaddr);
		e = net_event(K_RETRANSMIT, sk_netns(skaddr));
		if (!e)
			return 0;
		COPY_ADDRS(e, ctx);
		e->a = BPF_CORE_READ(ctx, state);
	} else {
		struct trace_event_raw_tcp_event_sk_skb *ctx = raw;
		skaddr = BPF_CORE_READ(ctx, skaddr);
		e = net_event(K_RETRANSMIT, sk_netns(skaddr));
		if (!e)
			return 0;
		COPY_ADDRS(e, ctx);
		e->a = BPF_CORE_READ(ctx, state);
	}
	e->sk = (__u64)skaddr;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* retransmit_synack.bt */
SEC("tracepoint/tcp/tcp_retransmit_synack")
int capsnap_retransmit_synack(struct trace_event_raw_tcp_retransmit_synack *ctx)
{
	const void *skaddr = BPF_CORE_READ(ctx, skaddr);
	struct net_event *e = net_event(K_RETRANSMIT_SYNACK, sk_netns(skaddr));
	if (!e)
		return 0;
	e->sk = (__u64)skaddr;
	COPY_ADDRS(e, ctx);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* reset_received.bt */
SEC("tracepoint/tcp/tcp_receive_reset")
int capsnap_reset_received(struct trace_event_raw_tcp_event_sk *ctx)
{
	const struct sock *sk = BPF_CORE_READ(ctx, skaddr);
	struct net_event *e = net_event(K_RESET_RECEIVED, sk_netns(sk));
	if (!e)
		return 0;
	e->sk = (__u64)sk;
	COPY_ADDRS(e, ctx);
	e->a = BPF_CORE_READ(sk, __sk_common.skc_state);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* reset_sent.bt: sockaddr_in/_in6 in 28-byte arrays. */
SEC("tracepoint/tcp/tcp_send_reset")
int capsnap_reset_sent(struct trace_event_raw_tcp_send_reset *ctx)
{
	const void *skaddr = BPF_CORE_READ(ctx, skaddr);
	__u32 ns;
	if (skaddr) {
		ns = sk_netns(skaddr);
	} else {
		const struct sk_buff *skb = BPF_CORE_READ(ctx, skbaddr);
		ns = BPF_CORE_READ(skb, dev, nd_net.net, ns.inum);
	}
	struct net_event *e = net_event(K_RESET_SENT, ns);
	if (!e)
		return 0;
	e->sk = (__u64)skaddr;
	__u8 s[28] = {}, d[28] = {};
	bpf_core_read(s, sizeof(s), &ctx->saddr);
	bpf_core_read(d, sizeof(d), &ctx->daddr);
	e->family = *(__u16 *)s == 2 ? 2 : 10;
	e->sport = __builtin_bswap16(*(__u16 *)(s + 2));
	e->dport = __builtin_bswap16(*(__u16 *)(d + 2));
	if (e->family == 2) {
		__builtin_memcpy(e->saddr, s + 4, 4);
		__builtin_memcpy(e->daddr, d + 4, 4);
	} else {
		__builtin_memcpy(e->saddr, s + 8, 16);
		__builtin_memcpy(e->daddr, d + 8, 16);
	}
	e->a = BPF_CORE_READ(ctx, state);
	e->b = BPF_CORE_READ(ctx, reason);
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* drop.bt */
SEC("tracepoint/skb/kfree_skb")
int capsnap_drop(struct trace_event_raw_kfree_skb *ctx)
{
	__u32 reason = BPF_CORE_READ(ctx, reason);
	if (reason <= drop_min)
		return 0;
	struct sk_buff *skb = BPF_CORE_READ(ctx, skbaddr);
	struct net_device *dev = BPF_CORE_READ(skb, dev);
	__u32 ns = dev ? BPF_CORE_READ(dev, nd_net.net, ns.inum)
		       : BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
	struct net_event *e = net_event(K_DROP, ns);
	if (!e)
		return 0;
	e->h.pid = 0; /* softirq as often as not: no task of its own */
	e->a = reason;
	e->location = (__u64)BPF_CORE_READ(ctx, location);
	e->ifindex = dev ? BPF_CORE_READ(dev, ifindex) : 0;
	/* The tracepoint stores ntohs(skb->protocol): host order already. */
	__u16 eth = BPF_CORE_READ(ctx, protocol);
	e->ethertype = eth;
	unsigned char *nh = BPF_CORE_READ(skb, head) + BPF_CORE_READ(skb, network_header);
	__u8 first = 0;
	bpf_probe_read_kernel(&first, 1, nh);
	if (eth == 0x0800 && first >> 4 == 4) {
		struct iphdr ip = {};
		bpf_probe_read_kernel(&ip, sizeof(ip), nh);
		e->family = 2;
		e->ip_proto = ip.protocol;
		__builtin_memcpy(e->saddr, &ip.saddr, 4);
		__builtin_memcpy(e->daddr, &ip.daddr, 4);
		if (ip.protocol == 6 || ip.protocol == 17) {
			__u16 ports[2] = {};
			bpf_probe_read_kernel(ports, sizeof(ports), nh + (first & 0xf) * 4);
			e->sport = __builtin_bswap16(ports[0]);
			e->dport = __builtin_bswap16(ports[1]);
		}
	} else if (eth == 0x86dd && first >> 4 == 6) {
		struct ipv6hdr ip6 = {};
		bpf_probe_read_kernel(&ip6, sizeof(ip6), nh);
		e->family = 10;
		e->ip_proto = ip6.nexthdr;
		__builtin_memcpy(e->saddr, ip6.saddr, 16);
		__builtin_memcpy(e->daddr, ip6.daddr, 16);
		if (ip6.nexthdr == 6 || ip6.nexthdr == 17) {
			__u16 ports[2] = {};
			bpf_probe_read_kernel(ports, sizeof(ports), nh + 40);
			e->sport = __builtin_bswap16(ports[0]);
			e->dport = __builtin_bswap16(ports[1]);
		}
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* connect_error.bt */
SEC("tracepoint/syscalls/sys_enter_connect")
int capsnap_connect_enter(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 addr = BPF_CORE_READ(ctx, args[1]);
	bpf_map_update_elem(&connect_addr, &tid, &addr, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int capsnap_connect_exit(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 *found = bpf_map_lookup_elem(&connect_addr, &tid);
	if (!found)
		return 0;
	__u64 sa = *found;
	bpf_map_delete_elem(&connect_addr, &tid);
	long ret = BPF_CORE_READ(ctx, ret);
	/* EINPROGRESS (115): a non-blocking connect under way. */
	if (ret >= 0 || ret == -115)
		return 0;
	__u8 buf[24] = {};
	bpf_probe_read_user(buf, sizeof(buf), (void *)sa);
	__u16 family = *(__u16 *)buf;
	if (family != 2 && family != 10)
		return 0;
	struct task_struct *task = (void *)bpf_get_current_task();
	struct net_event *e = net_event(K_CONNECT_ERROR, task_netns(task));
	if (!e)
		return 0;
	e->family = family;
	e->dport = __builtin_bswap16(*(__u16 *)(buf + 2));
	if (family == 2)
		__builtin_memcpy(e->daddr, buf + 4, 4);
	else
		__builtin_memcpy(e->daddr, buf + 8, 16);
	e->ret = ret;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
