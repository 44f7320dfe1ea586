//! The `ripple` command: parses arguments, sets up logging to stderr, runs the subcommand.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Ripple's command line.
#[derive(Debug, Parser)]
#[command(
    name = "ripple",
    version,
    about = "Ripple: an event-driven order pipeline on AWS Lambda in Rust"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system on this machine against an emulator and send sample orders through.
    Dev(ripple::dev::DevArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,ripple=info"));
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .init();
    match cli.command {
        Command::Dev(args) => dev(args).await,
    }
}

async fn dev(args: ripple::dev::DevArgs) -> ExitCode {
    let mut report = report_output();
    match ripple::dev::run(&args).await {
        Ok((summary, not_quiet)) => {
            let text = if args.json {
                ripple::dev::render_json(&summary)
            } else {
                ripple::dev::render(&summary)
            };
            let _ = writeln!(report, "{}", text.trim_end());
            let _ = report.flush();
            match not_quiet {
                None => ExitCode::SUCCESS,
                Some(err) => {
                    eprintln!("error: {err}");
                    eprintln!(
                        "hint: a failed message comes back only after its queue's visibility timeout; \
                         wait longer with --timeout, and look for failures in the log above"
                    );
                    ExitCode::FAILURE
                }
            }
        }
        Err(err) => {
            eprintln!("error: {}", ripple_kit::telemetry::error_chain(&err));
            if let Some(hint) = err.hint() {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

/// The real stdout for the report; from now on fd 1 feeds the log instead.
///
/// In Lambda a function's stdout is its log stream, and the functions print EMF metric lines
/// there. Here they run in this process, so each line they print becomes a log event (target
/// `lambda_stdout`, shown with `RUST_LOG=lambda_stdout=info`) and stdout carries only the report.
#[cfg(unix)]
fn report_output() -> Box<dyn std::io::Write> {
    use std::io::BufRead as _;
    use std::os::fd::AsFd as _;
    let _ = std::io::stdout().flush();
    let Ok(saved) = std::io::stdout().as_fd().try_clone_to_owned() else {
        return Box::new(std::io::stdout());
    };
    let Ok((reader, writer)) = rustix::pipe::pipe() else {
        return Box::new(std::io::stdout());
    };
    if rustix::stdio::dup2_stdout(&writer).is_err() {
        return Box::new(std::io::stdout());
    }
    drop(writer);
    std::thread::spawn(move || {
        // Never stops before the write end closes: a dead reader would make println! panic.
        let mut lines = std::io::BufReader::new(std::fs::File::from(reader));
        let mut line = Vec::new();
        while lines.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
            let text = String::from_utf8_lossy(&line);
            tracing::info!(target: "lambda_stdout", "{}", text.trim_end());
            line.clear();
        }
    });
    Box::new(std::fs::File::from(saved))
}

#[cfg(not(unix))]
fn report_output() -> Box<dyn std::io::Write> {
    Box::new(std::io::stdout())
}
