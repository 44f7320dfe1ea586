//! The fault plan: which faults are injected, how often, and the seeded rolls that decide each
//! one.
//!
//! Every decision is a roll: a hash of the seed, the fault's kind, what the fault would hit (an
//! SDK call's caller, operation and subject; a message's queue and event) and how many times
//! that thing was rolled for before. The same seed therefore makes the same decision for the same
//! thing, whatever order the concurrent pollers happen to meet things in; only what the run
//! meets (ids drawn at runtime, interleavings) can differ between two runs of one seed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// A kind of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// The function committed its effects and died before the ack: the SQS messages are not
    /// deleted (redelivered), the stream batch is retried, the HTTP client gets no answer.
    Crash,
    /// A message delivered a second time, later (SNS and SQS deliver at least once).
    Duplicate,
    /// A message held back and delivered late, after messages sent after it.
    Delay,
    /// A batch handed over in another order than the queue gave it.
    Shuffle,
    /// A throttling error from the service (the SDK backs off and retries).
    Throttle,
    /// A server error or a broken connection before the request was sent.
    Transient,
    /// A DynamoDB transaction conflict (`TransactionConflict`, `TransactionConflictException`).
    Conflict,
    /// A write the service applied whose answer was lost (a 5xx or a broken connection after).
    LostAnswer,
    /// An answer held past the invocation's timeout: the runner cancels the handler mid-flight.
    Timeout,
    /// An SNS request refused during the SNS outage.
    Outage,
    /// A poison message sent into a queue.
    Poison,
}

impl FaultKind {
    /// Every kind, in report order.
    pub const ALL: [FaultKind; 11] = [
        FaultKind::Crash,
        FaultKind::Duplicate,
        FaultKind::Delay,
        FaultKind::Shuffle,
        FaultKind::Throttle,
        FaultKind::Transient,
        FaultKind::Conflict,
        FaultKind::LostAnswer,
        FaultKind::Timeout,
        FaultKind::Outage,
        FaultKind::Poison,
    ];

    /// The name used in keys, reports and flags.
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Delay => "delay",
            FaultKind::Shuffle => "shuffle",
            FaultKind::Throttle => "throttle",
            FaultKind::Transient => "transient",
            FaultKind::Conflict => "conflict",
            FaultKind::LostAnswer => "lost_answer",
            FaultKind::Timeout => "timeout",
            FaultKind::Outage => "outage",
            FaultKind::Poison => "poison",
        }
    }
}

/// How often each fault strikes: a probability per opportunity (an invocation, a message, an SDK
/// call, a batch), 0 to turn it off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Per invocation: commit, then die before the ack.
    pub crash: f64,
    /// Per SQS message: delivered again later.
    pub duplicate: f64,
    /// Per SQS message: held back and delivered late.
    pub delay: f64,
    /// Per SQS batch: handed over shuffled.
    pub shuffle: f64,
    /// Per SDK call: a throttling error.
    pub throttle: f64,
    /// Per SDK call: a server error or a broken connection before sending.
    pub transient: f64,
    /// Per DynamoDB write: a transaction conflict.
    pub conflict: f64,
    /// Per write: applied, answer lost.
    pub lost_answer: f64,
    /// Per SDK call: the answer held past the invocation's timeout.
    pub timeout: f64,
}

impl Default for Rates {
    /// About one SDK call in seven faulted (the mix issue 10 measured with), one invocation in
    /// fifty crashed, one message in thirty duplicated and one delayed, one batch in four
    /// shuffled.
    fn default() -> Self {
        Rates {
            crash: 0.02,
            duplicate: 0.03,
            delay: 0.03,
            shuffle: 0.25,
            throttle: 0.05,
            transient: 0.03,
            conflict: 0.02,
            lost_answer: 0.03,
            timeout: 0.003,
        }
    }
}

impl Rates {
    /// The rate of `kind`; the outage and poison are not per-opportunity faults (0).
    pub fn of(&self, kind: FaultKind) -> f64 {
        match kind {
            FaultKind::Crash => self.crash,
            FaultKind::Duplicate => self.duplicate,
            FaultKind::Delay => self.delay,
            FaultKind::Shuffle => self.shuffle,
            FaultKind::Throttle => self.throttle,
            FaultKind::Transient => self.transient,
            FaultKind::Conflict => self.conflict,
            FaultKind::LostAnswer => self.lost_answer,
            FaultKind::Timeout => self.timeout,
            FaultKind::Outage | FaultKind::Poison => 0.0,
        }
    }

    /// Rates that are not probabilities, by flag name.
    pub fn invalid(&self) -> Vec<&'static str> {
        FaultKind::ALL
            .iter()
            .filter(|k| !(0.0..=1.0).contains(&self.of(**k)))
            .map(|k| k.as_str())
            .collect()
    }
}

/// One seeded draw: uniform 64 bits fixed by what was rolled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roll(u64);

impl Roll {
    /// A number in `[0, 1)`.
    pub fn unit(self) -> f64 {
        // The top 53 bits fit an f64 exactly.
        (self.0 >> 11) as f64 / (1_u64 << 53) as f64
    }

    /// True with probability `rate`.
    pub fn hits(self, rate: f64) -> bool {
        self.unit() < rate
    }

    /// A second, independent draw from the same roll, for choosing among variants.
    pub fn then(self) -> Roll {
        Roll(mix(self.0 ^ 0x9E37_79B9_7F4A_7C15))
    }

    /// A choice among `n` (0 for none).
    pub fn below(self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.0 % n as u64) as usize
    }

    /// A duration uniform in `0..=max`.
    pub fn within(self, max: Duration) -> Duration {
        max.mul_f64(self.unit())
    }
}

/// The SNS outage: when it starts (set once, when the load reaches it) and how long it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Outage {
    /// Placed orders after which SNS goes down.
    pub after_orders: u32,
    /// How long it stays down.
    #[serde(serialize_with = "super::report::seconds")]
    pub lasts: Duration,
}

/// The seeded fault plan of one run, and what it injected so far.
#[derive(Debug)]
pub struct Plan {
    seed: u64,
    rates: Rates,
    outage: Option<Outage>,
    outage_window: Mutex<Option<(Instant, Instant)>>,
    occurrences: Mutex<HashMap<String, u32>>,
    injected: [AtomicU64; FaultKind::ALL.len()],
}

impl Plan {
    /// The plan of `seed`.
    pub fn new(seed: u64, rates: Rates, outage: Option<Outage>) -> Self {
        Plan {
            seed,
            rates,
            outage,
            outage_window: Mutex::new(None),
            occurrences: Mutex::new(HashMap::new()),
            injected: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The rates.
    pub fn rates(&self) -> &Rates {
        &self.rates
    }

    /// The outage planned, if any.
    pub fn outage(&self) -> Option<Outage> {
        self.outage
    }

    /// The roll for the next opportunity of `kind` at `key`: the n-th roll for the same kind
    /// and key gets the n-th draw of the seed's sequence for them.
    pub fn roll(&self, kind: FaultKind, key: &str) -> Roll {
        self.roll_labelled(kind.as_str(), key)
    }

    /// The roll for the next SDK call at `key`: one roll decides which of the SDK faults, if
    /// any, the call gets (see [`crate::soak::sdk`]).
    pub fn roll_call(&self, key: &str) -> Roll {
        self.roll_labelled("sdk", key)
    }

    fn roll_labelled(&self, prefix: &str, key: &str) -> Roll {
        let label = format!("{prefix}|{key}");
        let occurrence = match self.occurrences.lock() {
            Ok(mut seen) => {
                let n = seen.entry(label.clone()).or_insert(0);
                *n += 1;
                *n
            }
            Err(_) => 0,
        };
        Roll(draw(self.seed, &label, occurrence))
    }

    /// Rolls for `kind` at `key` against its rate; counts it when it hits.
    pub fn strikes(&self, kind: FaultKind, key: &str) -> bool {
        let hit = self.roll(kind, key).hits(self.rates.of(kind));
        if hit {
            self.count(kind);
        }
        hit
    }

    /// Counts one injected fault of `kind`.
    pub fn count(&self, kind: FaultKind) {
        if let Some(counter) = FaultKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.injected.get(i))
        {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Faults injected so far, by kind (every kind listed).
    pub fn injected(&self) -> BTreeMap<FaultKind, u64> {
        FaultKind::ALL
            .iter()
            .zip(&self.injected)
            .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
            .collect()
    }

    /// Starts the SNS outage now, if one is planned and it has not started.
    pub fn start_outage(&self) {
        let (Some(outage), Ok(mut window)) = (self.outage, self.outage_window.lock()) else {
            return;
        };
        if window.is_none() {
            let now = Instant::now();
            *window = Some((now, now + outage.lasts));
            tracing::warn!(lasts_s = outage.lasts.as_secs_f64(), "SNS outage starts");
        }
    }

    /// True while SNS is down.
    pub fn sns_down(&self) -> bool {
        self.outage_window
            .lock()
            .ok()
            .and_then(|w| *w)
            .is_some_and(|(start, end)| (start..end).contains(&Instant::now()))
    }
}

/// 64 bits fixed by the seed, the label and the occurrence: FNV-1a, whose value is fixed by its
/// definition (unlike std's hasher), then the murmur3 finaliser to spread it.
fn draw(seed: u64, label: &str, occurrence: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let bytes = seed
        .to_le_bytes()
        .into_iter()
        .chain(label.bytes())
        .chain(occurrence.to_le_bytes());
    for byte in bytes {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(hash)
}

fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolls(plan: &Plan, key: &str) -> Vec<u64> {
        (0..20)
            .map(|_| plan.roll(FaultKind::Throttle, key).0)
            .collect()
    }

    #[test]
    fn the_same_seed_rolls_the_same_for_the_same_thing_in_any_order() {
        let a = Plan::new(7, Rates::default(), None);
        let b = Plan::new(7, Rates::default(), None);
        let first = rolls(&a, "orders-api:dynamodb:PutItem:t/Order#1");
        let _ = rolls(&b, "inventory:dynamodb:Query:t/Stock#A");
        assert_eq!(first, rolls(&b, "orders-api:dynamodb:PutItem:t/Order#1"));
        let other = Plan::new(8, Rates::default(), None);
        assert_ne!(
            first,
            rolls(&other, "orders-api:dynamodb:PutItem:t/Order#1")
        );
    }

    #[test]
    fn strikes_come_at_their_rate_and_are_counted() {
        let rates = Rates {
            throttle: 0.1,
            ..Rates::default()
        };
        let plan = Plan::new(42, rates, None);
        let hits = (0..20_000)
            .filter(|i| plan.strikes(FaultKind::Throttle, &format!("call-{}", i % 97)))
            .count();
        assert!((1_700..2_300).contains(&hits), "{hits}");
        assert_eq!(plan.injected()[&FaultKind::Throttle], hits as u64);
        assert_eq!(plan.injected()[&FaultKind::Crash], 0);
    }

    #[test]
    fn a_zero_rate_never_strikes_and_rates_must_be_probabilities() {
        let off = Rates {
            crash: 0.0,
            ..Rates::default()
        };
        let plan = Plan::new(1, off, None);
        assert!((0..1000).all(|i| !plan.strikes(FaultKind::Crash, &i.to_string())));
        let bad = Rates {
            delay: 1.5,
            crash: -0.1,
            ..Rates::default()
        };
        assert_eq!(bad.invalid(), ["crash", "delay"]);
        assert!(Rates::default().invalid().is_empty());
    }

    #[test]
    fn the_outage_is_down_only_inside_its_window() {
        let outage = Outage {
            after_orders: 0,
            lasts: Duration::from_millis(50),
        };
        let plan = Plan::new(1, Rates::default(), Some(outage));
        assert!(!plan.sns_down(), "not started");
        plan.start_outage();
        assert!(plan.sns_down());
        std::thread::sleep(Duration::from_millis(80));
        assert!(!plan.sns_down(), "recovered");
        plan.start_outage();
        assert!(!plan.sns_down(), "an outage happens once");
        assert!(!Plan::new(1, Rates::default(), None).sns_down());
    }

    #[test]
    fn rolls_spread_over_their_range() {
        let plan = Plan::new(3, Rates::default(), None);
        let roll = plan.roll(FaultKind::Delay, "q");
        assert!(roll.below(5) < 5);
        assert_eq!(roll.below(0), 0);
        assert!(roll.within(Duration::from_secs(2)) <= Duration::from_secs(2));
        assert_ne!(roll.then(), roll);
    }
}
