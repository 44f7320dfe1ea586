//! `ripple history ORDER`: an order's journey through the saga, from the store itself: every
//! event of its order, reservation and payment streams in causal order, who wrote each, the
//! time each step took, the order as its customer would see it after each step, and a waterfall
//! in which a slow or stuck step stands out.
//!
//! The streams are merged by time while each keeps its own sequence order, so the order after
//! each step is the read model's own fold ([`OrderView::apply`]) of what came before: what
//! `GET /orders/{id}` would have answered at that moment. `--at N` shows it after step N.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use domain::inventory::Reservation;
use domain::order::Order;
use domain::payment::Payment;
use domain::view::{OrderView, ViewEvent};
use ripple_kit::store::{DynamoEventStore, StoreError};
use ripple_kit::{Aggregate, Envelope, EventStore};
use serde::Serialize;
use serde_json::json;

use crate::stack::{Session, StackArgs, StackError};

/// The widest waterfall bar, in characters.
const BAR_WIDTH: usize = 40;

/// Options of `ripple history`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ripple history 01a2076b-43f1-707c-8a9e-5b7d2c48e6a1 --stack ripple
  ripple history 01a2076b-43f1-707c-8a9e-5b7d2c48e6a1 --stack ripple --at 2 --json")]
pub struct HistoryArgs {
    /// The order id.
    pub order: String,
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Show the order as it stood after this many steps (1 = just placed).
    #[arg(long)]
    pub at: Option<usize>,
    /// Print one JSON object on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// Why `ripple history` could not tell the journey.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The stack could not be found.
    #[error("stack")]
    Stack(#[from] StackError),
    /// The stack has no events table.
    #[error("the stack has no events table")]
    NoEventStore,
    /// The store could not be read.
    #[error("reading the events table")]
    Store(#[from] StoreError),
    /// No stream of the order holds anything.
    #[error("the stack holds no events of order {0}")]
    NoOrder(String),
    /// A stored event does not decode.
    #[error("event {stream}@{sequence} of order {order} does not decode: {reason}")]
    Corrupt {
        /// The order.
        order: String,
        /// Its stream.
        stream: String,
        /// Its sequence.
        sequence: u64,
        /// What the decoder said.
        reason: String,
    },
    /// `--at` is past the journey.
    #[error("--at {at}: order {order} has {steps} steps")]
    PastTheEnd {
        /// The order.
        order: String,
        /// What was asked.
        at: usize,
        /// How many there are.
        steps: usize,
    },
}

impl HistoryError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            HistoryError::Stack(err) => err.hint(),
            HistoryError::NoOrder(_) => {
                Some("order ids are in the API's answers and in `ripple dev --json`".into())
            }
            _ => None,
        }
    }
}

/// One step of an order's journey.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// 1 for the first.
    pub step: usize,
    /// When it happened.
    pub time: DateTime<Utc>,
    /// Milliseconds since the first step.
    pub since_start_ms: i64,
    /// Milliseconds since the step before.
    pub took_ms: i64,
    /// Its stream (`Payment#o-1`).
    pub stream: String,
    /// Its aggregate type (`Payment`).
    pub aggregate_type: String,
    /// Its sequence in its stream.
    pub sequence: u64,
    /// The event type.
    pub event_type: String,
    /// Who wrote it.
    pub source: String,
    /// The order as it stood after it.
    #[serde(skip)]
    pub view: OrderView,
}

/// An order's journey: its steps in causal order.
#[derive(Debug, Clone)]
pub struct Journey {
    /// The order.
    pub order_id: String,
    /// Its steps.
    pub steps: Vec<Step>,
}

impl Journey {
    /// The journey of `order_id` through `streams`, each in its sequence order: merged by time
    /// with every stream kept in order, folded step by step.
    pub fn of(order_id: &str, streams: Vec<Vec<Envelope>>) -> Result<Self, HistoryError> {
        let mut taken = vec![0usize; streams.len()];
        let mut view = OrderView::new(order_id);
        let mut steps: Vec<Step> = Vec::new();
        // The earliest head of the streams (the first stream's on a tie): each stream in order.
        while let Some(i) = (0..streams.len())
            .filter(|&i| taken[i] < streams[i].len())
            .min_by_key(|&i| streams[i][taken[i]].time)
        {
            let next = &streams[i][taken[i]];
            taken[i] += 1;
            let event = ViewEvent::from_envelope(next)
                .map_err(|e| e.to_string())
                .and_then(|v| v.ok_or_else(|| "not an order's stream".to_owned()))
                .map_err(|reason| HistoryError::Corrupt {
                    order: order_id.to_owned(),
                    stream: next.stream_key(),
                    sequence: next.sequence,
                    reason,
                })?;
            view.apply(&event);
            let start = steps.first().map_or(next.time, |s| s.time);
            let before = steps.last().map_or(next.time, |s| s.time);
            steps.push(Step {
                step: steps.len() + 1,
                time: next.time,
                since_start_ms: (next.time - start).num_milliseconds(),
                took_ms: (next.time - before).num_milliseconds(),
                stream: next.stream_key(),
                aggregate_type: next.aggregatetype.clone(),
                sequence: next.sequence,
                event_type: next.event_type.clone(),
                source: next.source.clone(),
                view: view.clone(),
            });
        }
        if steps.is_empty() {
            return Err(HistoryError::NoOrder(order_id.to_owned()));
        }
        Ok(Journey {
            order_id: order_id.to_owned(),
            steps,
        })
    }

    /// The order after step `at` (the last one when `None`).
    pub fn state_at(&self, at: Option<usize>) -> Result<&OrderView, HistoryError> {
        let n = at.unwrap_or(self.steps.len());
        match n.checked_sub(1).and_then(|i| self.steps.get(i)) {
            Some(step) => Ok(&step.view),
            None => Err(HistoryError::PastTheEnd {
                order: self.order_id.clone(),
                at: n,
                steps: self.steps.len(),
            }),
        }
    }

    /// The journey as a table with a waterfall, and the order after step `at`.
    pub fn render(&self, at: Option<usize>) -> Result<String, HistoryError> {
        let state = self.state_at(at)?;
        let total = self.steps.last().map_or(0, |s| s.since_start_ms).max(1);
        let mut out = format!("order {}\n\n", self.order_id);
        let _ = writeln!(
            out,
            "{:>4}  {:<20} {:<13} {:<20} {:>9} {:>9}  {:<11} waterfall",
            "step", "event", "stream", "by", "at", "took", "then"
        );
        let mut previous = 0;
        for step in &self.steps {
            let from = bar_position(previous, total);
            let to = bar_position(step.since_start_ms, total).max(from + 1);
            let bar = format!("{}{}", " ".repeat(from), "█".repeat(to - from));
            let _ = writeln!(
                out,
                "{:>4}  {:<20} {:<13} {:<20} {:>9} {:>9}  {:<11} |{bar:<w$}|",
                step.step,
                step.event_type,
                format!("{}@{}", step.aggregate_type, step.sequence),
                step.source,
                millis(step.since_start_ms),
                millis(step.took_ms),
                status(&step.view),
                w = BAR_WIDTH + 1,
            );
            previous = step.since_start_ms;
        }
        let after = at.unwrap_or(self.steps.len());
        let _ = writeln!(out, "\nafter step {after}:");
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(state).unwrap_or_default()
        );
        Ok(out)
    }

    /// The journey and the order after step `at`, as one JSON object.
    pub fn to_json(&self, at: Option<usize>) -> Result<String, HistoryError> {
        let state = self.state_at(at)?;
        let steps: Vec<serde_json::Value> = self
            .steps
            .iter()
            .map(|s| {
                let mut step = serde_json::to_value(s).unwrap_or_default();
                step["status_after"] = json!(status(&s.view));
                step
            })
            .collect();
        Ok(json!({
            "order_id": self.order_id,
            "steps": steps,
            "at": at.unwrap_or(self.steps.len()),
            "state": state,
        })
        .to_string()
            + "\n")
    }
}

fn bar_position(ms: i64, total: i64) -> usize {
    let ms = usize::try_from(ms.clamp(0, total)).unwrap_or(0);
    let total = usize::try_from(total).unwrap_or(1).max(1);
    (ms * BAR_WIDTH).div_ceil(total).min(BAR_WIDTH)
}

fn millis(ms: i64) -> String {
    if ms.abs() >= 10_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

fn status(view: &OrderView) -> String {
    serde_json::to_value(view.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// Reads the order's streams from the stack's store.
pub async fn journey(store: &DynamoEventStore, order_id: &str) -> Result<Journey, HistoryError> {
    let mut streams = Vec::new();
    for aggregate_type in [Order::TYPE, Reservation::TYPE, Payment::TYPE] {
        streams.push(store.read_stream(aggregate_type, order_id, 1).await?);
    }
    Journey::of(order_id, streams)
}

/// Runs `ripple history`.
pub async fn run(args: &HistoryArgs) -> Result<String, HistoryError> {
    let session = Session::open_operator(&args.stack).await?;
    let deployment = session.lookup().await?;
    let table = deployment
        .events_table()
        .ok_or(HistoryError::NoEventStore)?;
    let store = DynamoEventStore::new(session.connection.clients.dynamodb.clone(), table.clone());
    let journey = journey(&store, &args.order).await?;
    if args.json {
        journey.to_json(args.at)
    } else {
        journey.render(args.at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeDelta;
    use domain::order::{CancelReason, OrderEvent};
    use domain::testing::{cancelled, placed, rejected, stored};

    fn at(mut envelope: Envelope, ms: i64) -> Envelope {
        let start = DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z").unwrap();
        envelope.time = start.with_timezone(&Utc) + TimeDelta::milliseconds(ms);
        envelope
    }

    fn compensated() -> Vec<Vec<Envelope>> {
        let order = vec![
            at(
                stored::<Order>("o-1", 1, &OrderEvent::Placed(placed("o-1"))),
                0,
            ),
            at(
                stored::<Order>("o-1", 2, &cancelled("o-1", CancelReason::OutOfStock)),
                900,
            ),
        ];
        let reservation = vec![at(stored::<Reservation>("o-1", 1, &rejected("o-1")), 250)];
        vec![order, reservation, Vec::new()]
    }

    #[test]
    fn the_streams_merge_in_time_and_each_step_holds_the_order_as_it_then_stood() {
        let journey = Journey::of("o-1", compensated()).unwrap();
        let types: Vec<&str> = journey
            .steps
            .iter()
            .map(|s| s.event_type.as_str())
            .collect();
        assert_eq!(types, ["order.placed", "stock.rejected", "order.cancelled"]);
        let took: Vec<i64> = journey.steps.iter().map(|s| s.took_ms).collect();
        assert_eq!(took, [0, 250, 650]);
        assert_eq!(journey.steps[2].since_start_ms, 900);
        assert_eq!(status(&journey.steps[0].view), "placed");
        assert_eq!(status(&journey.steps[2].view), "cancelled");
        assert_eq!(journey.state_at(Some(1)).unwrap().events_applied(), 1);
        assert_eq!(
            journey.state_at(None).unwrap(),
            &OrderView::rebuild(
                "o-1",
                &compensated()
                    .concat()
                    .iter()
                    .map(|e| ViewEvent::from_envelope(e).unwrap().unwrap())
                    .collect::<Vec<_>>()
            )
        );
    }

    #[test]
    fn a_stream_keeps_its_own_order_when_a_clock_runs_behind() {
        let mut streams = compensated();
        // The saga's clock is behind: its cancel reads as before the rejection that caused it.
        streams[0][1].time = streams[1][0].time - TimeDelta::milliseconds(100);
        let journey = Journey::of("o-1", streams).unwrap();
        assert_eq!(journey.steps[0].event_type, "order.placed");
        assert_eq!(
            status(&journey.state_at(None).unwrap().clone()),
            "cancelled"
        );
    }

    #[test]
    fn an_unknown_order_and_a_step_past_the_end_are_errors() {
        assert!(matches!(
            Journey::of("o-9", vec![Vec::new(); 3]),
            Err(HistoryError::NoOrder(_))
        ));
        let journey = Journey::of("o-1", compensated()).unwrap();
        assert!(matches!(
            journey.state_at(Some(4)),
            Err(HistoryError::PastTheEnd { steps: 3, .. })
        ));
        assert!(journey.state_at(Some(0)).is_err());
    }

    #[test]
    fn the_waterfall_puts_each_step_where_it_happened() {
        let text = Journey::of("o-1", compensated())
            .unwrap()
            .render(None)
            .unwrap();
        let bars: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split_once('|').map(|(_, bar)| bar))
            .collect();
        assert_eq!(bars.len(), 3, "{text}");
        // The cancel took most of the time: its bar is the longest.
        let length = |bar: &str| bar.chars().filter(|c| *c == '█').count();
        assert!(length(bars[2]) > length(bars[1]), "{text}");
        assert!(text.contains("after step 3:"));
        let json: serde_json::Value = serde_json::from_str(
            &Journey::of("o-1", compensated())
                .unwrap()
                .to_json(Some(2))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["steps"][1]["status_after"], "placed");
        assert_eq!(json["at"], 2);
    }
}
