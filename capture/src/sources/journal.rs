//! Recent journal lines of the units that matter for node incidents
//! (kubelet, the container runtimes, systemd, dbus) and the kernel's.

use crate::report::SourceReport;
use crate::source::{Context, InNetns, Phase, Scope, Source, Window};
use crate::tool::run_tool;
use formats::bundle::{Artifact, JOURNAL};

pub struct Journal;

impl Source for Journal {
    fn name(&self) -> &'static str {
        "journal"
    }

    fn scope(&self) -> Scope {
        Scope::Node
    }

    fn phase(&self) -> Phase {
        Phase::Close
    }

    fn writes(&self) -> Vec<&'static Artifact> {
        vec![&JOURNAL]
    }

    fn run(&self, cx: &Context, _: Option<&InNetns>, _: &Window) -> Vec<SourceReport> {
        let argv = [
            "journalctl",
            "--no-pager",
            "-o",
            "short-iso-precise",
            "--since",
            "-2h",
            "-n",
            "20000",
            "-u",
            "kubelet",
            "-u",
            "containerd",
            "-u",
            "docker",
            "-u",
            "crio",
            "-u",
            "systemd",
            "-u",
            "dbus",
            "-k",
        ];
        vec![run_tool(
            &argv,
            &cx.node_file(&JOURNAL),
            JOURNAL.path.into(),
            SourceReport::new(JOURNAL.source, None),
            cx.opts.source_timeout,
        )]
    }
}
