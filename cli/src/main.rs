//! The `ripple` command: parses arguments, sets up logging to stderr, runs the subcommand.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

use ripple::invoke::InvokeArgs;
use ripple::stack::{EnvArgs, StackArgs};

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
    /// Provision a stack of the template in the emulator and leave it there.
    Up(StackArgs),
    /// Print the environment the template gives a function, resolved for a provisioned stack.
    Env(EnvArgs),
    /// Run one function's binary on one event, as Lambda would, against a stack (provisioned if
    /// missing); prints its answer.
    Invoke(InvokeArgs),
    /// Delete everything a stack holds.
    Down(StackArgs),
    /// Place orders at a steady rate through the whole system in the local runner; print latency
    /// percentiles, outcomes, the invariants, the AWS requests per order and the cost per
    /// million orders; exits non-zero if an invariant fails.
    Load(ripple::load::LoadArgs),
    /// Run the whole system under a seeded fault plan and check that nothing was lost, doubled
    /// or left stuck; exits non-zero on any violation.
    Soak(ripple::soak::SoakArgs),
    /// Publish the events a stack stored in a time range again, from the store itself
    /// (consumers deduplicate: what they already have changes nothing).
    Republish(ripple::republish::RepublishArgs),
    /// What a stack's dead-letter queues hold, grouped by reason; one message in full; moving
    /// messages back to their source queue (consumers deduplicate: moving one twice is harmless).
    Dlq(ripple::dlq::DlqArgs),
    /// An order's journey from the store: every event of its streams in causal order, who wrote
    /// it, how long each step took (a waterfall), and the order after each step.
    History(ripple::history::HistoryArgs),
    /// Recover from the store: rebuild order views (one or all), or publish a time range of
    /// stored events again.
    Replay(ripple::replay::ReplayArgs),
    /// One screen on a stack: functions, queue and DLQ depths, the store's stream, the latest
    /// dead letters' reasons, orders by state.
    Status(ripple::status::StatusArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let soaking = matches!(cli.command, Command::Soak(_));
    // Under the soak's fault plan the SDK cannot mark connections it never had for closure, and
    // says so at ERROR for every answer made in a service's place: not news.
    let default_filter = if soaking {
        "warn,ripple=info,aws_smithy_runtime::client::http::connection_poisoning=off"
    } else {
        "warn,ripple=info"
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // `ripple soak` reads the consumers' failure reasons back from the log, whatever RUST_LOG says.
    let reasons = ripple::soak::ReasonLog::default();
    let reading_reasons = soaking.then(|| {
        reasons
            .clone()
            .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
                ripple::soak::ReasonLog::wants(metadata)
            }))
    });
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .with_filter(filter),
        )
        .with(reading_reasons)
        .init();
    match cli.command {
        Command::Soak(args) => soak(args, reasons).await,
        Command::Dev(args) => dev(args).await,
        Command::Load(args) => load(args).await,
        Command::Up(args) => print(ripple::stack::up(&args).await, |e| e.hint()),
        Command::Env(args) => print(ripple::stack::env(&args).await, |e| e.hint()),
        Command::Invoke(args) => invoke(args).await,
        Command::Down(args) => print(
            ripple::stack::down(&args).await.map(|()| String::new()),
            |e| e.hint(),
        ),
        Command::Republish(args) => {
            let result = ripple::republish::run(&args).await;
            done(result, |e| e.hint())
        }
        Command::Replay(args) => {
            let result = ripple::replay::run(&args).await;
            done(result, |e| e.hint())
        }
        Command::Dlq(args) => print(ripple::dlq::run(&args).await, |e| e.hint()),
        Command::Status(args) => print(ripple::status::run(&args).await, |e| e.hint()),
        Command::History(args) => print(ripple::history::run(&args).await, |e| e.hint()),
    }
}

/// Prints the output of a command that may have done only part of its work, failing if so.
fn done<E: std::error::Error + 'static>(
    result: Result<(String, bool), E>,
    hint: impl Fn(&E) -> Option<String>,
) -> ExitCode {
    match result {
        Ok((text, complete)) => {
            print!("{text}");
            if complete {
                ExitCode::SUCCESS
            } else {
                eprintln!("error: some events were not published; run the same range again");
                ExitCode::FAILURE
            }
        }
        Err(err) => fail(&err, hint(&err)),
    }
}

/// Prints the output, or the error with its chain and hint.
fn print<E: std::error::Error + 'static>(
    result: Result<String, E>,
    hint: impl Fn(&E) -> Option<String>,
) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => fail(&err, hint(&err)),
    }
}

fn fail<E: std::error::Error + 'static>(err: &E, hint: Option<String>) -> ExitCode {
    eprintln!("error: {}", ripple_kit::telemetry::error_chain(err));
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
    ExitCode::FAILURE
}

async fn invoke(args: InvokeArgs) -> ExitCode {
    match ripple::invoke::run(&args).await {
        Ok(ripple::invoke::Invoked {
            answer,
            binary_bytes,
        }) => {
            let text = if args.cold_start {
                serde_json::json!({
                    "function": args.function,
                    "profile": args.profile,
                    "binary_bytes": binary_bytes,
                    "cold_start": answer.cold_start,
                    "response": answer.response,
                })
                .to_string()
            } else {
                serde_json::to_string_pretty(&answer.response)
                    .unwrap_or_else(|_| answer.response.to_string())
            };
            println!("{text}");
            let failed = answer.failed_records();
            if failed.is_empty() {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "error: the function reported failed records: {}",
                failed.join(", ")
            );
            if args.quiet {
                print_log(&answer.log);
            }
            ExitCode::FAILURE
        }
        Err(err) => {
            if let ripple::invoke::InvocationError::Run(run) = &err
                && args.quiet
            {
                print_log(run.log());
            }
            let hint = err.hint();
            fail(&err, hint)
        }
    }
}

fn print_log(lines: &[String]) {
    eprintln!("the function's log:");
    for line in lines {
        eprintln!("  {line}");
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
        Err(err) => fail(&err, err.hint().map(str::to_owned)),
    }
}

async fn load(args: ripple::load::LoadArgs) -> ExitCode {
    let mut report = report_output();
    match ripple::load::run_command(&args).await {
        Ok((load, not_quiet)) => {
            let text = if args.json {
                load.render_json()
            } else {
                load.render()
            };
            let _ = writeln!(report, "{}", text.trim_end());
            let _ = report.flush();
            if let Some(err) = not_quiet {
                eprintln!("error: {err}");
            }
            if load.holds() {
                ExitCode::SUCCESS
            } else {
                for failed in load.invariants().iter().filter(|i| !i.holds) {
                    eprintln!(
                        "error: invariant failed: {} ({})",
                        failed.name, failed.detail
                    );
                }
                ExitCode::FAILURE
            }
        }
        Err(err) => fail(&err, err.hint()),
    }
}

async fn soak(args: ripple::soak::SoakArgs, reasons: ripple::soak::ReasonLog) -> ExitCode {
    let seed = ripple::soak::seed_of(&args);
    let rerun = ripple::soak::rerun_command(&args, seed);
    eprintln!("ripple soak: seed {seed} (rerun: {rerun})");
    let mut report = report_output();
    match ripple::soak::run(&args, seed, reasons).await {
        Ok(soaked) => {
            let text = if args.json {
                ripple::soak::render_json(&soaked)
            } else {
                ripple::soak::render(&soaked)
            };
            let _ = writeln!(report, "{}", text.trim_end());
            let _ = report.flush();
            if soaked.passed() {
                return ExitCode::SUCCESS;
            }
            eprintln!(
                "error: the soak of seed {seed} found {} violation(s); rerun it (against the emulator: \
                 eval \"$(bash tests/emulator/emulator.sh env)\" first) with:\n  {rerun}",
                soaked.violations
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("error: the soak of seed {seed} could not run; rerun it with:\n  {rerun}");
            fail(&err, err.hint().map(str::to_owned))
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
