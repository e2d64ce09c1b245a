//! Packets of every selected namespace at once, each namespace's into its
//! own pcapng ([`crate::packets`]): the capture starts when the window
//! opens and ends when it closes, a packet or byte bound, or a signal.

use crate::packets::{CaptureOptions, CaptureTarget, RING_BYTES, capture_here};
use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window};
use formats::bundle::{Artifact, PACKETS};

pub struct Packets;

/// Kernel ring memory across every capture point: each gets
/// [`RING_BYTES`], less when many namespaces share this budget (at least
/// 2 MiB, tcpdump's default). The ring is locked kernel memory.
const RING_BUDGET: usize = 64 << 20;

/// The kernel ring of each of `points` capture points.
pub fn ring_bytes(points: usize) -> usize {
    (RING_BUDGET / points.max(1)).clamp(2 << 20, RING_BYTES)
}

impl Source for Packets {
    fn name(&self) -> &'static str {
        "packets"
    }

    fn scope(&self) -> Scope {
        Scope::Netns
    }

    fn phase(&self) -> Phase {
        Phase::Window
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&PACKETS]
    }

    fn run(&self, cx: &Context, ns: Option<&InNetns>, window: &Window) -> Vec<SourceReport> {
        let Some(ns) = ns else {
            window.ready();
            return Vec::new();
        };
        if !cx.opts.packets {
            window.ready();
            return vec![
                ns.report(&PACKETS)
                    .with(Status::Skipped, "not asked for (--no-packets)"),
            ];
        }
        window.ready_as("capture starting");
        window.wait_open();
        if !ns.entered {
            return vec![ns.not_entered(
                &PACKETS,
                "packet sockets belong to the namespace they are opened in",
            )];
        }
        let _ = ns.file(cx, &PACKETS);
        let target = CaptureTarget {
            label: ns.ns.label.clone(),
            // The runner's thread has entered the namespace already.
            netns: None,
            interfaces: cx.opts.interfaces.clone(),
            file: ns.rel(&PACKETS),
        };
        let opts = CaptureOptions {
            duration: cx.opts.duration,
            max_packets: cx.opts.max_packets,
            max_bytes: cx.opts.max_bytes / cx.namespaces.len().max(1) as u64,
            snaplen: cx.opts.snaplen,
            ring_bytes: ring_bytes(cx.namespaces.len()),
            disk: Some(cx.disk.clone()),
        };
        vec![capture_here(
            &target,
            &opts,
            window.interrupted_flag(),
            &cx.staging,
        )]
    }
}
