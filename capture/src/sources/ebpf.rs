//! eBPF events through bpftrace ([`crate::ebpf`]): the probes are attached
//! before the window opens (the window waits for them) and detached when
//! it closes.

use crate::ebpf::{EbpfOptions, start_bpftrace};
use crate::report::{SourceReport, Status};
use crate::source::{Context, InNetns, Phase, Scope, Source, Window};
use formats::bundle::{self, Artifact};
use std::time::Duration;

pub struct Ebpf;

impl Source for Ebpf {
    fn name(&self) -> &'static str {
        "eBPF probes"
    }

    fn scope(&self) -> Scope {
        Scope::Node
    }

    fn phase(&self) -> Phase {
        Phase::Window
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![
            &bundle::EVENTS,
            &bundle::EBPF_STDERR,
            &bundle::EBPF_SCRIPT,
            &bundle::EBPF_CLOCK,
            &bundle::EBPF_SUMMARY,
        ]
    }

    fn run(&self, cx: &Context, _: Option<&InNetns>, window: &Window) -> Vec<SourceReport> {
        if !cx.opts.ebpf {
            window.ready();
            return vec![
                SourceReport::new(bundle::EVENTS.source, None)
                    .with(Status::Skipped, "not asked for (--no-ebpf)"),
            ];
        }
        let opts = EbpfOptions {
            bpftrace: cx.opts.bpftrace.clone(),
            attach_timeout: Duration::from_secs(30).min(cx.opts.source_timeout * 3),
        };
        // bpftrace dies with the thread that started it (PR_SET_PDEATHSIG):
        // this one, which also stops it.
        match start_bpftrace(&opts, &cx.staging) {
            Ok(session) => {
                window.ready_as("eBPF probes attached");
                // bpftrace writes events.jsonl itself: its growth is
                // claimed from the disk budget as the window runs, and the
                // probes come off early when the disk runs low.
                let events = cx.node_file(&bundle::EVENTS);
                let mut claimed = 0;
                let mut low = None;
                while !window.is_closed() {
                    std::thread::sleep(Duration::from_millis(200));
                    let size = std::fs::metadata(&events).map_or(claimed, |m| m.len());
                    if let Err(e) = cx.disk.claim(size.saturating_sub(claimed)) {
                        low = Some(e);
                        break;
                    }
                    claimed = size.max(claimed);
                }
                let mut report = session.stop();
                if let Some(e) = low {
                    report.status = Status::Partial;
                    let why = format!("stopped early: {e}");
                    report.reason = Some(match report.reason.take() {
                        Some(r) => format!("{why}; {r}"),
                        None => why,
                    });
                }
                vec![report]
            }
            Err(report) => {
                window.ready();
                vec![report]
            }
        }
    }
}
