//! What a soak reports: the seed and the command that reruns it, the faults injected by kind,
//! each invariant with its violations, and the run's figures; as a table or as one JSON object.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::invariants::{EXAMPLES, Invariant};
use super::plan::FaultKind;
use super::time::Compressed;

/// One invariant as reported: its violations counted, the first few described.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvariantReport {
    /// Its name.
    pub name: &'static str,
    /// What it asserts.
    pub asserts: &'static str,
    /// Things checked.
    pub checked: u64,
    /// Violations found.
    pub violations: usize,
    /// The first violations, described.
    pub examples: Vec<String>,
}

impl From<&Invariant> for InvariantReport {
    fn from(invariant: &Invariant) -> Self {
        InvariantReport {
            name: invariant.name,
            asserts: invariant.asserts,
            checked: invariant.checked,
            violations: invariant.violations.len(),
            examples: invariant
                .violations
                .iter()
                .take(EXAMPLES)
                .cloned()
                .collect(),
        }
    }
}

/// The run's figures: what flowed, read from the store, the taps and the runtime's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    /// Events in the store.
    pub events_stored: u64,
    /// Deliveries of the domain-events topic (duplicates included).
    pub events_published: u64,
    /// Customer messages the notifications topic delivered.
    pub customer_messages: u64,
    /// Publish calls of a customer message beyond its first (a lost answer retried).
    pub customer_message_copies: u64,
    /// Messages found in DLQs and on-failure destinations.
    pub dead_letters: u64,
    /// Answers the API gave, every attempt counted, by status (0: no answer).
    pub api_answers: BTreeMap<u16, u64>,
    /// Customer cancellations requested.
    pub cancellations: u64,
    /// Invocations of every function.
    pub invocations: u64,
    /// Invocations that failed, timed out or panicked.
    pub invocation_errors: u64,
    /// SQS messages reported failed (each failed receive).
    pub messages_failed: u64,
    /// Stream batch retries.
    pub stream_retries: u64,
    /// Stream records given up on (sent to the on-failure destination).
    pub stream_discarded: u64,
    /// Failure reasons logged, by distinct message.
    pub reasons_logged: u64,
}

/// Everything one soak found.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// The seed of the plan and the load.
    pub seed: u64,
    /// Orders in the load.
    pub orders: u32,
    /// The stack it ran as.
    pub stack: String,
    /// The factor time was compressed by.
    pub time_scale: f64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<FaultKind, u64>,
    /// Faults injected in all.
    pub faults_injected: u64,
    /// Every invariant, with its violations.
    pub invariants: Vec<InvariantReport>,
    /// Violations in all.
    pub violations: usize,
    /// The run's figures.
    pub figures: Figures,
    /// The durations the template sets, and what the soak ran with.
    pub compressed: Vec<Compressed>,
    /// Milliseconds placing the load.
    pub load_ms: u64,
    /// Milliseconds from the last order until the pipeline went quiet (or the wait ran out).
    pub settle_ms: u64,
    /// Milliseconds of the whole run, provisioning and teardown included.
    pub wall_ms: u64,
    /// The command that reruns this soak.
    pub rerun: String,
}

impl SoakReport {
    /// True when every invariant held.
    pub fn passed(&self) -> bool {
        self.violations == 0
    }
}

/// Serialises a duration as seconds.
pub fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// The report as one JSON object.
pub fn render_json(report: &SoakReport) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|err| format!("{{\"error\": \"{err}\"}}"))
}

/// The report as text: the faults, the invariant table, the violations, the figures.
pub fn render(report: &SoakReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ripple soak: seed {}, {} orders, time compressed {}x, stack {}",
        report.seed, report.orders, report.time_scale, report.stack
    );
    let faults: Vec<String> = report
        .faults
        .iter()
        .map(|(kind, n)| format!("{} {n}", kind.as_str()))
        .collect();
    let _ = writeln!(
        out,
        "faults injected: {} ({})",
        report.faults_injected,
        faults.join(", ")
    );
    let _ = writeln!(out);
    let width = report
        .invariants
        .iter()
        .map(|i| i.name.len())
        .max()
        .unwrap_or(10);
    let _ = writeln!(
        out,
        "{:width$}  {:>8}  {:>10}",
        "invariant", "checked", "violations"
    );
    for invariant in &report.invariants {
        let _ = writeln!(
            out,
            "{:width$}  {:>8}  {:>10}",
            invariant.name, invariant.checked, invariant.violations
        );
    }
    for invariant in report.invariants.iter().filter(|i| i.violations > 0) {
        let _ = writeln!(out, "\n{} ({}):", invariant.name, invariant.asserts);
        for example in &invariant.examples {
            let _ = writeln!(out, "  - {example}");
        }
        if invariant.violations > invariant.examples.len() {
            let _ = writeln!(
                out,
                "  ... and {} more",
                invariant.violations - invariant.examples.len()
            );
        }
    }
    let figures = &report.figures;
    let _ = writeln!(
        out,
        "\n{} events stored, {} deliveries published, {} customer messages ({} published again), {} dead letters; \
         {} invocations ({} failed), {} messages failed, {} stream retries, {} stream records discarded",
        figures.events_stored,
        figures.events_published,
        figures.customer_messages,
        figures.customer_message_copies,
        figures.dead_letters,
        figures.invocations,
        figures.invocation_errors,
        figures.messages_failed,
        figures.stream_retries,
        figures.stream_discarded
    );
    let answers: Vec<String> = figures
        .api_answers
        .iter()
        .map(|(status, n)| format!("{status}: {n}"))
        .collect();
    let _ = writeln!(out, "API answers by status: {}", answers.join(", "));
    let _ = writeln!(
        out,
        "time compressed {}x: {}",
        report.time_scale,
        time_line(&report.compressed)
    );
    let _ = writeln!(
        out,
        "load {:.1} s, settle {:.1} s, wall {:.1} s",
        report.load_ms as f64 / 1000.0,
        report.settle_ms as f64 / 1000.0,
        report.wall_ms as f64 / 1000.0
    );
    let _ = writeln!(
        out,
        "\nviolations: {}{}",
        report.violations,
        if report.passed() { "" } else { "  (FAILED)" }
    );
    let _ = writeln!(out, "rerun: {}", report.rerun);
    out
}

/// The compressed durations, one entry per kind and value: `visibility timeout 60 s -> 15 s (5)`.
fn time_line(compressed: &[Compressed]) -> String {
    let mut kinds: BTreeMap<(String, String, String), usize> = BTreeMap::new();
    for c in compressed {
        let figure = |s: f64| format!("{}", (s * 1000.0).round() / 1000.0);
        *kinds
            .entry((c.kind.clone(), figure(c.template_s), figure(c.soak_s)))
            .or_insert(0) += 1;
    }
    kinds
        .iter()
        .map(|((kind, from, to), n)| format!("{kind} {from} s -> {to} s ({n})"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(violations: Vec<String>) -> SoakReport {
        let invariant = Invariant {
            name: "money conserved",
            asserts: "captured minus refunded is the total of the confirmed orders",
            checked: 3,
            violations,
        };
        let invariants = vec![InvariantReport::from(&invariant)];
        SoakReport {
            seed: 42,
            orders: 3,
            stack: "s".into(),
            time_scale: 10.0,
            faults: FaultKind::ALL.iter().map(|k| (*k, 1)).collect(),
            faults_injected: FaultKind::ALL.len() as u64,
            violations: invariants.iter().map(|i| i.violations).sum(),
            invariants,
            figures: Figures::default(),
            compressed: vec![
                Compressed {
                    resource: "s-inventory".into(),
                    kind: "visibility timeout".into(),
                    template_s: 60.0,
                    soak_s: 15.0,
                },
                Compressed {
                    resource: "s-payments".into(),
                    kind: "visibility timeout".into(),
                    template_s: 60.0,
                    soak_s: 15.0,
                },
            ],
            load_ms: 1,
            settle_ms: 2,
            wall_ms: 3,
            rerun: "ripple soak --seed 42".into(),
        }
    }

    #[test]
    fn the_json_report_has_the_fields_ci_reads() {
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&report(vec!["o-1: paid 1".into()]))).unwrap();
        for field in ["orders", "seed", "faults", "invariants", "violations"] {
            assert!(json.get(field).is_some(), "{field}");
        }
        assert_eq!(json["faults"]["lost_answer"], 1);
        assert_eq!(json["violations"], 1);
        assert_eq!(json["invariants"][0]["examples"][0], "o-1: paid 1");
    }

    #[test]
    fn the_table_shows_each_invariant_the_violations_and_how_to_rerun() {
        let text = render(&report(vec!["o-1: paid 1".into()]));
        assert!(text.contains("money conserved"), "{text}");
        assert!(text.contains("  - o-1: paid 1"), "{text}");
        assert!(text.contains("violations: 1  (FAILED)"), "{text}");
        assert!(text.contains("rerun: ripple soak --seed 42"), "{text}");
        assert!(
            text.contains("time compressed 10x: visibility timeout 60 s -> 15 s (2)"),
            "{text}"
        );
        assert!(render(&report(Vec::new())).contains("violations: 0\n"));
    }
}
