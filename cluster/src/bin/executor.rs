//! An executor of capsnap's local Apache Ballista cluster
//! (`bench/ballista.sh up` starts two): Ballista's own executor, started
//! through its library entry point (see the scheduler's note).

use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(about = "Apache Ballista executor for capsnap's local cluster")]
struct Args {
    /// Address to listen on (and to advertise to the scheduler).
    #[arg(long, default_value = "127.0.0.1")]
    bind_host: String,
    /// Arrow Flight port (shuffle data and results).
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// gRPC port (tasks from the scheduler).
    #[arg(long, default_value_t = 50052)]
    grpc_port: u16,
    /// Scheduler host.
    #[arg(long, default_value = "127.0.0.1")]
    scheduler_host: String,
    /// Scheduler port.
    #[arg(long, default_value_t = 50050)]
    scheduler_port: u16,
    /// Task slots (default: the machine's cores).
    #[arg(long)]
    concurrent_tasks: Option<usize>,
    /// Directory for shuffle files (default: a temporary directory).
    #[arg(long)]
    work_dir: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    capsnap_cluster::init_logging("capsnap-ballista-executor");
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_stack_size(32 << 20)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capsnap-ballista-executor: {e}");
            return ExitCode::from(2);
        }
    };
    let mut config = ExecutorProcessConfig {
        bind_host: args.bind_host.clone(),
        external_host: Some(args.bind_host),
        port: args.port,
        grpc_port: args.grpc_port,
        scheduler_host: args.scheduler_host,
        scheduler_port: args.scheduler_port,
        // Wait for a scheduler started at the same moment.
        scheduler_connect_timeout_seconds: 30,
        work_dir: args.work_dir,
        ..ExecutorProcessConfig::default()
    };
    config.override_function_registry = Some(Arc::new(function_registry()));
    if let Some(n) = args.concurrent_tasks {
        config.vcores = n;
    }
    eprintln!(
        "capsnap-ballista-executor: flight port {}, grpc port {}, scheduler {}:{}",
        config.port, config.grpc_port, config.scheduler_host, config.scheduler_port
    );
    match runtime.block_on(start_executor_process(Arc::new(config))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capsnap-ballista-executor: {e}");
            ExitCode::from(2)
        }
    }
}

/// Ballista's function registry with DataFusion's nested functions added.
/// `BallistaFunctionRegistry::default()` (ballista-core 55 `registry.rs`)
/// takes `datafusion::functions::all_default_functions()`, which leaves
/// out the `datafusion-functions-nested` ones the client's SQL planner
/// has (`array_element`, the `x[n]` of `string_to_array(...)[n]`,
/// `make_array`, ...): a task using one was refused by the executor
/// ("PhysicalExtensionCodec is not provided for scalar function
/// array_element") and its job failed.
fn function_registry() -> ballista_core::registry::BallistaFunctionRegistry {
    let mut registry = ballista_core::registry::BallistaFunctionRegistry::default();
    for f in datafusion::functions_nested::all_default_nested_functions() {
        registry.scalar_functions.insert(f.name().to_owned(), f);
    }
    registry
}
