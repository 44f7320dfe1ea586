//! `ripple soak` against the emulator with every fault off and real time: the whole pipeline under
//! the soak's load (hot sku, declined cards, customer cancels) breaks no invariant, so what the
//! soak reports under faults is the faults' doing, never the harness's.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use clap::Parser;
use ripple::soak::{ReasonLog, SoakArgs};

#[derive(Debug, Parser)]
struct Command {
    #[command(flatten)]
    soak: SoakArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_with_every_fault_off_finds_no_violation() {
    support::emulator().await;
    let stack = support::stack_name("soak", "calm");
    let mut words = vec![
        "soak",
        "--orders",
        "40",
        "--seed",
        "5",
        "--stack",
        &stack,
        "--poison",
        "0",
        "--sns-outage",
        "0",
        "--timeout",
        "300",
        "--time-scale",
        "1",
    ];
    for rate in [
        "--crash-rate",
        "--duplicate-rate",
        "--delay-rate",
        "--shuffle-rate",
        "--throttle-rate",
        "--transient-rate",
        "--conflict-rate",
        "--lost-answer-rate",
        "--timeout-rate",
    ] {
        words.extend([rate, "0"]);
    }
    let args = Command::parse_from(words).soak;
    let report = ripple::soak::run(&args, 5, ReasonLog::default())
        .await
        .unwrap();
    assert_eq!(report.violations, 0, "{}", ripple::soak::render(&report));
    assert_eq!(report.faults_injected, 0);
    assert_eq!(report.figures.api_answers.get(&201), Some(&40));
    assert!(
        report.figures.events_stored > 40 * 3,
        "{:?}",
        report.figures
    );
}
