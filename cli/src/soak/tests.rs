use clap::Parser;

use super::*;

#[derive(Debug, Parser)]
struct Command {
    #[command(flatten)]
    soak: SoakArgs,
}

fn parse(words: &[&str]) -> SoakArgs {
    Command::parse_from(std::iter::once("soak").chain(words.iter().copied())).soak
}

#[test]
fn the_rerun_command_parses_back_into_the_same_soak() {
    let args = parse(&[
        "--orders",
        "700",
        "--crash-rate",
        "0.5",
        "--sns-outage",
        "0",
        "--poison",
        "9",
        "--time-scale",
        "3",
    ]);
    let rerun = rerun_command(&args, 77);
    let words: Vec<&str> = rerun
        .split_whitespace()
        .skip_while(|w| *w != "soak")
        .skip(1)
        .collect();
    let again = parse(&words);
    assert_eq!(seed_of(&again), 77);
    assert_eq!(again.orders, 700);
    assert_eq!(again.rates.rates(), args.rates.rates());
    assert_eq!(again.sns_outage, Some(0.0));
    assert_eq!(again.poison, Some(9));
    assert_eq!(again.time_scale, 3.0);
    assert_eq!(again.hot_share, args.hot_share);
}

#[test]
fn every_fault_is_on_by_default() {
    let args = parse(&[]);
    let rates = args.rates.rates();
    for kind in plan::FaultKind::ALL {
        let per_opportunity = !matches!(kind, plan::FaultKind::Outage | plan::FaultKind::Poison);
        assert_eq!(rates.of(kind) > 0.0, per_opportunity, "{kind:?}");
    }
    assert_eq!(args.sns_outage, None, "an outage sized from the template");
    assert!(args.hot_share > 0.0);
}
