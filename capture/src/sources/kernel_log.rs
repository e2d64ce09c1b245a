//! The kernel log, through the `dmesg` tool (it reads /dev/kmsg or
//! syslog(2)), with ISO times: `dmesg -T` prints local time without a zone.

use crate::report::SourceReport;
use crate::source::{Context, InNetns, Phase, Scope, Source, Window};
use crate::tool::run_tool;
use formats::bundle::{Artifact, KERNEL_LOG};

pub struct KernelLog;

impl Source for KernelLog {
    fn name(&self) -> &'static str {
        "kernel log"
    }

    fn scope(&self) -> Scope {
        Scope::Node
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&KERNEL_LOG]
    }

    fn run(&self, cx: &Context, _: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        vec![run_tool(
            &["dmesg", "-x", "--time-format", "iso"],
            &cx.node_file(&KERNEL_LOG),
            KERNEL_LOG.path.into(),
            SourceReport::new(KERNEL_LOG.source, None),
            cx.opts.source_timeout,
        )]
    }
}
