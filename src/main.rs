//! The `capsnap` command: parses arguments, hands them to the library
//! crates, reports errors as `capsnap: ...` with exit code 2.

use analyze::{Format, InputSpec, Workspace};
use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "capsnap",
    version,
    about = "Offline capture and post-mortem analyzer for Linux and Kubernetes nodes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run SQL over capture files (tables: packets, flows).
    #[command(long_about = "Run SQL over capture files.\n\n\
        Inputs are pcap or pcapng files, each optionally labelled with its capture point:\n  \
        capsnap query host=node.pcap pod/web=web.pcapng \"select capture, count(*) from packets where rst group by capture\"\n\n\
        Without SQL (and without -f), an interactive prompt opens; SQL piped on stdin is run as is.")]
    Query(QueryArgs),
    /// List the tables with their columns, types and meaning.
    #[command(
        long_about = "List the tables with their columns, types and meaning.\n\n\
        With inputs, also tells what each input holds:\n  capsnap tables node.pcap"
    )]
    Tables {
        /// Inputs to describe ([LABEL=]FILE).
        inputs: Vec<String>,
    },
}

#[derive(Args)]
struct QueryArgs {
    /// Inputs ([LABEL=]FILE...), then the SQL to run.
    #[arg(required = true, value_name = "[LABEL=]FILE... SQL")]
    args: Vec<String>,
    /// Read the SQL from this file instead of the last argument.
    #[arg(short = 'f', long = "file", value_name = "SQL_FILE")]
    sql_file: Option<PathBuf>,
    /// Output format.
    #[arg(long, default_value = "table", value_parser = clap::builder::PossibleValuesParser::new(Format::NAMES))]
    format: String,
    /// Write the result to this file instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// What `query` will do, validated before any work starts.
struct QueryConfig {
    inputs: Vec<InputSpec>,
    sql: Option<String>,
    format: Format,
    output: Option<PathBuf>,
}

impl QueryConfig {
    fn from_args(a: QueryArgs) -> Result<QueryConfig> {
        let format = Format::parse(&a.format).context("unknown format")?;
        let mut args = a.args;
        let sql = match a.sql_file {
            Some(f) => Some(
                std::fs::read_to_string(&f)
                    .with_context(|| format!("reading SQL file {}", f.display()))?,
            ),
            None if args.last().is_some_and(|l| !InputSpec::looks_like_input(l))
                && args.len() > 1 =>
            {
                args.pop()
            }
            None => None,
        };
        let inputs: Vec<InputSpec> = args.iter().map(|a| InputSpec::parse(a)).collect();
        for (arg, input) in args.iter().zip(&inputs) {
            if !input.path.exists() {
                bail!(
                    "input {arg}: {} does not exist (inputs come first, then the SQL in quotes)",
                    input.path.display()
                );
            }
        }
        if sql.is_none()
            && format.is_binary()
            && a.output.is_none()
            && std::io::stdout().is_terminal()
        {
            bail!(analyze::Error::BinaryToTerminal);
        }
        Ok(QueryConfig {
            inputs,
            sql,
            format,
            output: a.output,
        })
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

fn open(inputs: &[InputSpec]) -> Result<Workspace> {
    let ws = Workspace::open(inputs)?;
    for w in ws.warnings() {
        eprintln!("capsnap: warning: {w}");
    }
    Ok(ws)
}

fn query(config: QueryConfig) -> Result<()> {
    let mut out: Box<dyn Write + Send> = match &config.output {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => {
            if config.format.is_binary() && std::io::stdout().is_terminal() {
                bail!(analyze::Error::BinaryToTerminal);
            }
            Box::new(std::io::BufWriter::with_capacity(
                1 << 16,
                std::io::stdout(),
            ))
        }
    };
    let rt = runtime()?;
    rt.block_on(async {
        let ws = open(&config.inputs)?;
        match &config.sql {
            Some(sql) => ws.run(sql, config.format, &mut *out).await.map(|_| ())?,
            None => analyze::interactive(&ws, config.format, &mut *out).await?,
        }
        anyhow::Ok(())
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Query(args) => query(QueryConfig::from_args(args)?),
        Command::Tables { inputs } => {
            let mut out = std::io::stdout().lock();
            if inputs.is_empty() {
                analyze::describe_tables(&mut out)?;
            } else {
                let inputs: Vec<InputSpec> = inputs.iter().map(|a| InputSpec::parse(a)).collect();
                open(&inputs)?.describe(&mut out)?;
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e)
            if e.chain().any(|c| {
                c.downcast_ref::<analyze::Error>()
                    .is_some_and(analyze::Error::is_broken_pipe)
                    || c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("capsnap: {e:#}");
            ExitCode::from(2)
        }
    }
}
