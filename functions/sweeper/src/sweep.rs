//! The two passes: windows of the time index, what each finds, what it does about it.

use std::collections::BTreeMap;
use std::time::SystemTime;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use domain::inventory::Reservation;
use domain::order::Order;
use domain::payment::Payment;
use domain::saga::decide_deadline;
use domain::views::{ViewStore, ViewStoreError, rebuild_from};
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::store::{
    Conflicting, EventKey, RetryPolicy, TimeIndexed, TimeRange, retry_on_conflict,
};
use ripple_kit::{Aggregate, Append, Envelope, EventStore, Loaded, StoreError};
use serde::Serialize;

use crate::cursor::{CursorError, Cursors, Pass};
use crate::{SOURCE, Sweeper};

/// How much of the time index one step reads (the cursor moves after each).
const STEP: TimeDelta = TimeDelta::minutes(5);
/// Where a pass that never ran starts: this long before its end.
const FIRST_LOOKBACK: TimeDelta = TimeDelta::hours(1);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SweepReport {
    /// Orders whose view was compared with their streams.
    pub views_checked: u64,
    /// Views rebuilt because they were behind (or missing).
    pub views_repaired: u64,
    /// Orders placed before their deadline that were looked at.
    pub orders_checked: u64,
    /// Orders cancelled as timed out.
    pub orders_timed_out: u64,
    /// Where the views pass stands now.
    pub views_swept_to: Option<DateTime<Utc>>,
    /// Where the deadlines pass stands now.
    pub deadlines_swept_to: Option<DateTime<Utc>>,
}

/// Why a sweep stopped (its cursors stay where the last finished step left them).
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// The event store failed, or kept conflicting.
    #[error("event store")]
    Store(#[from] StoreError),
    /// A stored event is unreadable.
    #[error("unreadable event")]
    Event(#[from] EnvelopeError),
    /// The views table failed, or kept conflicting.
    #[error("views table")]
    Views(#[from] ViewStoreError),
    /// The cursors could not be read or moved.
    #[error("sweep cursor")]
    Cursor(#[from] CursorError),
}

impl Conflicting for SweepError {
    fn is_conflict(&self) -> bool {
        match self {
            SweepError::Store(err) => err.is_conflict(),
            SweepError::Views(ViewStoreError::Conflict { .. }) => true,
            _ => false,
        }
    }
}

impl<S, V, C> Sweeper<S, V, C>
where
    S: EventStore + TimeIndexed,
    V: ViewStore,
    C: Cursors,
{
    /// Both passes as of `now`, starting no step after `until`.
    pub async fn sweep(
        &self,
        now: DateTime<Utc>,
        until: SystemTime,
    ) -> Result<SweepReport, SweepError> {
        let mut report = SweepReport::default();
        let settle = TimeDelta::from_std(self.settle).unwrap_or(TimeDelta::MAX);
        let deadline = TimeDelta::from_std(self.deadline).unwrap_or(TimeDelta::MAX);
        // Deadlines first: an undecided order holds stock and money, a stale view only misleads.
        report.deadlines_swept_to = self
            .pass(Pass::Deadlines, now - deadline, until, &mut report)
            .await?;
        report.views_swept_to = self
            .pass(Pass::Views, now - settle, until, &mut report)
            .await?;
        Ok(report)
    }

    /// Sweeps `pass` up to `end`, step by step, moving its cursor after each step.
    async fn pass(
        &self,
        pass: Pass,
        end: DateTime<Utc>,
        until: SystemTime,
        report: &mut SweepReport,
    ) -> Result<Option<DateTime<Utc>>, SweepError> {
        let mut from = match self.cursors.get(pass).await? {
            Some(at) => at,
            None => end - FIRST_LOOKBACK,
        };
        while from < end && SystemTime::now() < until {
            let to = (from + STEP).min(end);
            let keys = self.store.all_keys_in(&TimeRange::new(from, to)).await?;
            match pass {
                Pass::Views => self.repair_views(&keys, report).await?,
                Pass::Deadlines => self.time_out(&keys, report).await?,
            }
            self.cursors.advance(pass, to).await?;
            from = to;
        }
        Ok(Some(from))
    }

    /// Rebuilds the view of every order whose streams hold an event its view does not.
    async fn repair_views(
        &self,
        keys: &[EventKey],
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        // Per order, the highest sequence seen of each of its streams.
        let mut orders: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
        for key in keys {
            let (aggregate_type, id) = key.aggregate();
            if [Order::TYPE, Reservation::TYPE, Payment::TYPE].contains(&aggregate_type) {
                let seen = orders
                    .entry(id)
                    .or_default()
                    .entry(aggregate_type)
                    .or_default();
                *seen = (*seen).max(key.sequence);
            }
        }
        for (order_id, streams) in orders {
            report.views_checked += 1;
            let repaired = retry_on_conflict(&RetryPolicy::default(), || {
                self.repair_view(order_id, &streams)
            })
            .await?;
            if repaired {
                report.views_repaired += 1;
                self.metrics.count("ViewsRepaired");
                tracing::warn!(
                    order_id,
                    "view was behind its streams; rebuilt from the store"
                );
            }
        }
        Ok(())
    }

    /// Rebuilds the view of `order_id` if it misses an event of `streams`; true if it did.
    async fn repair_view(
        &self,
        order_id: &str,
        streams: &BTreeMap<&str, u64>,
    ) -> Result<bool, SweepError> {
        let stored = self.views.get(order_id).await?;
        let behind = match &stored {
            None => true,
            Some(stored) => streams.iter().any(|(aggregate_type, sequence)| {
                stored.view.version_of(aggregate_type) < *sequence
            }),
        };
        if !behind {
            return Ok(false);
        }
        let rebuilt = rebuild_from::<_, SweepError>(&self.store, order_id).await?;
        let expected = stored.map_or(0, |stored| stored.version);
        self.views.put(&rebuilt, expected).await?;
        Ok(true)
    }

    /// Cancels every order placed in the window (its `order.placed` is sequence 1 of its
    /// stream) that is still undecided.
    async fn time_out(
        &self,
        keys: &[EventKey],
        report: &mut SweepReport,
    ) -> Result<(), SweepError> {
        let placed = keys
            .iter()
            .filter(|k| k.sequence == 1 && k.aggregate().0 == Order::TYPE)
            .map(|k| k.aggregate().1);
        for order_id in placed {
            report.orders_checked += 1;
            let cancelled = retry_on_conflict(&RetryPolicy::default(), || {
                self.cancel_if_undecided(order_id)
            })
            .await?;
            if cancelled {
                report.orders_timed_out += 1;
                self.metrics.count("OrdersTimedOut");
                tracing::warn!(
                    order_id,
                    "order undecided at its deadline; cancelled as timed out"
                );
            }
        }
        Ok(())
    }

    async fn cancel_if_undecided(&self, order_id: &str) -> Result<bool, SweepError> {
        let order: Loaded<Order> = self.store.load(order_id).await?;
        let Some(cancelled) = decide_deadline(&order) else {
            return Ok(false);
        };
        let event = Envelope::encode(SOURCE, order.next(), &cancelled)?;
        self.store.append(Append::events(vec![event])).await?;
        Ok(true)
    }
}
