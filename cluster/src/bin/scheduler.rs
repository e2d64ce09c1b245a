//! The scheduler of capsnap's local Apache Ballista cluster
//! (`bench/ballista.sh up`): Ballista's own scheduler, started through
//! its library entry point so it is built in capsnap's workspace with
//! capsnap's DataFusion, without the REST API and object-store extras of
//! the `ballista-scheduler` binary.

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "Apache Ballista scheduler for capsnap's local cluster")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// gRPC port (Ballista's default is 50050).
    #[arg(long, default_value_t = 50050)]
    port: u16,
}

fn main() -> ExitCode {
    let args = Args::parse();
    capsnap_cluster::init_logging("capsnap-ballista-scheduler");
    // Ballista's own binary runs on 32 MiB thread stacks: deep plans
    // (the detections' joins and unions) recurse far.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capsnap-ballista-scheduler: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capsnap-ballista-scheduler: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ballista's session, with [`capsnap_cluster::MetricsBearingLeaves`]
/// run last over every physical plan the scheduler makes.
fn session_state(
    config: datafusion::prelude::SessionConfig,
) -> datafusion::common::Result<datafusion::execution::SessionState> {
    let state = ballista_core::utils::default_session_builder(config)?;
    Ok(
        datafusion::execution::SessionStateBuilder::new_from_existing(state)
            .with_physical_optimizer_rule(Arc::new(capsnap_cluster::MetricsBearingLeaves))
            .build(),
    )
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = format!("{}:{}", args.bind_host, args.port).parse()?;
    let config = SchedulerConfig {
        bind_host: args.bind_host.clone(),
        bind_port: args.port,
        external_host: args.bind_host,
        ..SchedulerConfig::default()
    }
    .with_override_session_builder(Arc::new(session_state));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    eprintln!("capsnap-ballista-scheduler: listening on {addr}");
    start_server(cluster, addr, Arc::new(config)).await?;
    Ok(())
}
