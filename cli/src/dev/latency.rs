//! How long the saga took, read from the store: for each order, from `order.placed` to its
//! terminal event, and each step's time since the one before (`order.placed → stock.reserved`),
//! as p50/p95/p99 over the orders of a run.

use std::collections::BTreeMap;

use domain::view::ViewStatus;
use serde::Serialize;

use crate::history::Journey;

/// Percentiles of a set of durations, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// How many durations.
    pub count: usize,
    /// The median.
    pub p50: f64,
    /// 95 % are at most this.
    pub p95: f64,
    /// 99 % are at most this.
    pub p99: f64,
    /// The longest.
    pub max: f64,
}

impl Percentiles {
    /// The nearest-rank percentiles of `values` (all zero when there are none).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Percentiles::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p / 100.0) * values.len() as f64).ceil() as usize;
            values[index.clamp(1, values.len()) - 1]
        };
        Percentiles {
            count: values.len(),
            p50: rank(50.0),
            p95: rank(95.0),
            p99: rank(99.0),
            max: values[values.len() - 1],
        }
    }
}

/// The saga's latency over a run's orders.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// From `order.placed` to `order.confirmed` or `order.cancelled`, over the orders that got
    /// there.
    pub placed_to_terminal: Percentiles,
    /// Each step's time since the step before, by `previous → this` event type.
    pub steps: BTreeMap<String, Percentiles>,
}

impl Latency {
    /// The latency over `journeys`.
    pub fn of<'a>(journeys: impl IntoIterator<Item = &'a Journey>) -> Self {
        let mut to_terminal = Vec::new();
        let mut steps: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for journey in journeys {
            if let Some(terminal) = journey
                .steps
                .iter()
                .find(|s| matches!(s.view.status, ViewStatus::Confirmed | ViewStatus::Cancelled))
            {
                to_terminal.push(terminal.since_start_ms as f64);
            }
            for pair in journey.steps.windows(2) {
                steps
                    .entry(format!("{} → {}", pair[0].event_type, pair[1].event_type))
                    .or_default()
                    .push(pair[1].took_ms as f64);
            }
        }
        Latency {
            placed_to_terminal: Percentiles::of(to_terminal),
            steps: steps
                .into_iter()
                .map(|(step, values)| (step, Percentiles::of(values)))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = Percentiles::of((1..=100).map(f64::from).collect());
        assert_eq!(
            (p.count, p.p50, p.p95, p.p99, p.max),
            (100, 50.0, 95.0, 99.0, 100.0)
        );
        let one = Percentiles::of(vec![7.0]);
        assert_eq!((one.p50, one.p99), (7.0, 7.0));
        assert_eq!(Percentiles::of(Vec::new()), Percentiles::default());
    }
}
