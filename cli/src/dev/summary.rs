//! What a run did, read back from the runtime's counters, the queues and the event store.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use domain::inventory::{ReservationEvent, Stock};
use domain::order::{CancelReason, Order, OrderStatus};
use ripple_kit::requests::RequestCounts;
use ripple_kit::store::DynamoEventStore;
use ripple_kit::{EventStore, Loaded, StoreError};

use super::DevError;
use super::latency::Latency;
use super::orders::Placed;
use super::sample::CATALOGUE;
use crate::load::cost::{Cost, Invocations, Usage, cost};
use crate::provision::{Clients, Deployment};
use crate::runtime::{FunctionSnapshot, Runtime, StatsSnapshot, sqs};
use crate::template::EventSource;

/// What one `ripple dev` run did.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// The stack name.
    pub stack: String,
    /// Orders POSTed.
    pub orders_sent: u64,
    /// Orders the API accepted (2xx).
    pub orders_placed: u64,
    /// Orders the API refused or failed, by status code.
    pub orders_refused: BTreeMap<u16, u64>,
    /// Event items in the events table.
    pub events_stored: u64,
    /// Stored events by type.
    pub events_by_type: BTreeMap<String, u64>,
    /// Stream records the publisher handled (events published to the topic).
    pub events_published: u64,
    /// Queue messages consumers handled.
    pub messages_consumed: u64,
    /// Queue messages consumers failed (each failed receive).
    pub messages_failed: u64,
    /// Messages in dead-letter queues.
    pub dlq_messages: u64,
    /// Records in on-failure destinations (stream batches given up on).
    pub failure_records: u64,
    /// `stock.reserved` events.
    pub stock_reserved: u64,
    /// `stock.rejected` events.
    pub stock_rejected: u64,
    /// Failed invocations.
    pub invocation_errors: u64,
    /// How long the saga took, from the store (placed to terminal, and per step).
    pub latency: Latency,
    /// Where the placed orders ended up (flattened into the JSON: `confirmed`, …).
    #[serde(flatten)]
    pub outcomes: OrderOutcomes,
    /// Per sku of the sample catalogue: seeded, available and allocated units.
    pub stock: Vec<StockLevel>,
    /// For every sku: seeded = available + units of confirmed orders, and allocated = those units.
    pub stock_conserved: bool,
    /// Whether the pipeline went quiet within the wait limit.
    pub quiet: bool,
    /// Milliseconds from the first order to a quiet pipeline.
    pub elapsed_ms: u64,
    /// Milliseconds from the first order sent to the last one answered.
    pub placing_ms: u64,
    /// Milliseconds of the whole run (provisioning and teardown included).
    pub total_ms: u64,
    /// Per function, by logical id.
    pub functions: BTreeMap<String, FunctionSummary>,
    /// Per queue, by name.
    pub queues: BTreeMap<String, QueueSummary>,
    /// The local HTTP API.
    pub http_url: Option<String>,
    /// What the run used in the units AWS bills: invocations and billed time per function, the
    /// AWS requests by service and operation (the kit's counter), the HTTP API's requests.
    pub usage: Usage,
    /// That usage per order and per million orders at list prices.
    pub cost: Cost,
}

/// Where the placed orders ended up, read back from their streams.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OrderOutcomes {
    /// Stock reserved and payment captured.
    pub confirmed: u64,
    /// Cancelled: not enough stock.
    pub cancelled_out_of_stock: u64,
    /// Cancelled: the payment was declined (and the stock released).
    pub cancelled_payment_declined: u64,
    /// Cancelled by the customer.
    pub cancelled_customer_request: u64,
    /// Cancelled at their deadline (a saga message was lost).
    pub cancelled_timed_out: u64,
    /// Not yet in a terminal state.
    pub pending: u64,
}

impl OrderOutcomes {
    fn count(&mut self, order: &Order) {
        let slot = match (order.status, order.cancel_reason) {
            (OrderStatus::Confirmed, _) => &mut self.confirmed,
            (OrderStatus::Cancelled, Some(CancelReason::OutOfStock)) => {
                &mut self.cancelled_out_of_stock
            }
            (OrderStatus::Cancelled, Some(CancelReason::PaymentDeclined)) => {
                &mut self.cancelled_payment_declined
            }
            (OrderStatus::Cancelled, Some(CancelReason::TimedOut)) => &mut self.cancelled_timed_out,
            (OrderStatus::Cancelled, _) => &mut self.cancelled_customer_request,
            (OrderStatus::Placed | OrderStatus::Unplaced, _) => &mut self.pending,
        };
        *slot += 1;
    }
}

/// One sku's stock at the end of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockLevel {
    /// The sku.
    pub sku: String,
    /// Units seeded before the orders.
    pub seeded: u64,
    /// Units free now.
    pub available: u64,
    /// Units set aside for orders now.
    pub allocated: u64,
    /// Units on confirmed orders.
    pub confirmed_units: u64,
}

impl StockLevel {
    /// Nothing created or lost: what was seeded is free or on a confirmed order.
    pub fn conserved(&self) -> bool {
        self.seeded == self.available + self.confirmed_units
            && self.allocated == self.confirmed_units
    }
}

/// One function's part.
#[derive(Debug, Clone, Serialize)]
pub struct FunctionSummary {
    /// Its binary.
    pub binary: String,
    /// What triggers it.
    pub triggers: Vec<String>,
    /// Its counters.
    #[serde(flatten)]
    pub stats: FunctionSnapshot,
}

/// One queue's state at the end.
#[derive(Debug, Clone, Serialize)]
pub struct QueueSummary {
    /// `consumed`, `dead-letter`, `on-failure` or `unused`.
    pub role: &'static str,
    /// Messages waiting, in flight or delayed.
    pub messages: u64,
}

/// Everything the run did: the API's answers, each function's counters, each queue's depth, and
/// what the event store holds.
pub(super) async fn summarize(
    clients: &Clients,
    deployment: &Deployment,
    runtime: &Runtime,
    placed: &[Placed],
    requests: RequestCounts,
) -> Result<Summary, DevError> {
    let statuses: Vec<u16> = placed.iter().map(|(status, _)| *status).collect();
    let order_ids: Vec<&str> = placed.iter().filter_map(|(_, id)| id.as_deref()).collect();
    let snapshot = runtime.stats().snapshot();
    let total = snapshot.total();
    let mut orders_refused = BTreeMap::new();
    for status in statuses.iter().filter(|s| !(200..300).contains(*s)) {
        *orders_refused.entry(*status).or_insert(0) += 1;
    }
    let queues = QueueDepths::read(clients, deployment).await;
    let events_by_type = count_events(clients, deployment).await?;
    let (outcomes, stock) = outcomes_and_stock(clients, deployment, &order_ids).await?;
    let latency = latency(clients, deployment, &order_ids).await?;
    // Counted by the events' own type names (from their serde renames), not by literals.
    let count = |event: &ReservationEvent| {
        ripple_kit::envelope::event_type_of(event)
            .and_then(|t| events_by_type.get(t).copied())
            .unwrap_or(0)
    };
    let rejected = ReservationEvent::Rejected {
        order_id: String::new(),
        shortages: Vec::new(),
    };
    let publishers: u64 = deployment
        .functions
        .values()
        .filter(|f| {
            f.events
                .iter()
                .any(|e| matches!(e, EventSource::DynamoDb(_)))
        })
        .filter_map(|f| snapshot.functions.get(&f.logical_id))
        .map(|s| s.stream_succeeded)
        .sum();
    let orders_placed = statuses.iter().filter(|s| (200..300).contains(*s)).count() as u64;
    let usage = Usage {
        functions: invocations(deployment, &snapshot),
        requests,
        by_function: runtime.stats().requests_by_function(),
        event_sources: runtime.event_source_requests(),
        http_requests: snapshot.http_requests,
    };
    Ok(Summary {
        stack: deployment.stack_name.clone(),
        orders_sent: statuses.len() as u64,
        orders_placed,
        orders_refused,
        events_stored: events_by_type.values().sum(),
        stock_reserved: count(&ReservationEvent::Reserved(Default::default())),
        stock_rejected: count(&rejected),
        events_by_type,
        events_published: publishers,
        messages_consumed: total.sqs_succeeded,
        messages_failed: total.sqs_failed,
        dlq_messages: queues.dead_letter,
        failure_records: queues.on_failure,
        invocation_errors: total.errors,
        latency,
        outcomes,
        stock_conserved: stock.iter().all(StockLevel::conserved),
        stock,
        quiet: false,
        elapsed_ms: 0,
        placing_ms: 0,
        total_ms: 0,
        functions: function_summaries(deployment, &snapshot),
        queues: queues.by_name,
        http_url: runtime.http_url(),
        cost: cost(&usage, orders_placed),
        usage,
    })
}

/// Each function's invocations and billed milliseconds, at the memory size its template entry
/// gives it (Lambda's `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, from `MemorySize`).
fn invocations(deployment: &Deployment, snapshot: &StatsSnapshot) -> BTreeMap<String, Invocations> {
    deployment
        .functions
        .iter()
        .map(|(id, function)| {
            let stats = snapshot.functions.get(id).copied().unwrap_or_default();
            let memory_mb = function
                .environment
                .get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.parse().ok())
                .unwrap_or(128);
            let invocations = Invocations {
                count: stats.invocations,
                billed_ms: stats.billed_ms,
                memory_mb,
            };
            (id.clone(), invocations)
        })
        .collect()
}

/// Each function's triggers, named as the stack names them, and its counters.
fn function_summaries(
    deployment: &Deployment,
    snapshot: &StatsSnapshot,
) -> BTreeMap<String, FunctionSummary> {
    deployment
        .functions
        .iter()
        .map(|(id, function)| {
            let summary = FunctionSummary {
                binary: function.binary.clone(),
                triggers: function
                    .events
                    .iter()
                    .map(|e| deployment.trigger(e))
                    .collect(),
                stats: snapshot.functions.get(id).copied().unwrap_or_default(),
            };
            (id.clone(), summary)
        })
        .collect()
}

/// Every queue's depth and role at the end, with the totals the summary reports.
pub(crate) struct QueueDepths {
    pub(crate) by_name: BTreeMap<String, QueueSummary>,
    pub(crate) dead_letter: u64,
    pub(crate) on_failure: u64,
}

impl QueueDepths {
    pub(crate) async fn read(clients: &Clients, deployment: &Deployment) -> Self {
        let events = || deployment.functions.values().flat_map(|f| &f.events);
        let consumed: Vec<&str> = events()
            .filter_map(|e| match e {
                EventSource::Sqs(s) => Some(s.queue.as_str()),
                _ => None,
            })
            .collect();
        let on_failure: Vec<&str> = events()
            .filter_map(|e| match e {
                EventSource::DynamoDb(s) => s.on_failure.as_deref(),
                _ => None,
            })
            .collect();
        let mut depths = QueueDepths {
            by_name: BTreeMap::new(),
            dead_letter: 0,
            on_failure: 0,
        };
        for queue in deployment.queues.values() {
            let messages = sqs::depth(&clients.sqs, &queue.url)
                .await
                .unwrap_or_default();
            let role = if queue.dead_letter {
                depths.dead_letter += messages;
                "dead-letter"
            } else if on_failure.contains(&queue.logical_id.as_str()) {
                depths.on_failure += messages;
                "on-failure"
            } else if consumed.contains(&queue.logical_id.as_str()) {
                "consumed"
            } else {
                "unused"
            };
            depths
                .by_name
                .insert(queue.name.clone(), QueueSummary { role, messages });
        }
        depths
    }
}

/// The saga's latency over the placed orders, from their journeys in the store.
pub(crate) async fn latency(
    clients: &Clients,
    deployment: &Deployment,
    order_ids: &[&str],
) -> Result<Latency, DevError> {
    let Some(table) = deployment.events_table() else {
        return Ok(Latency::default());
    };
    let store = DynamoEventStore::new(clients.dynamodb.clone(), &table);
    let mut journeys = Vec::new();
    for order_id in order_ids {
        match crate::history::journey(&store, order_id).await {
            Ok(journey) => journeys.push(journey),
            Err(crate::history::HistoryError::Store(source)) => {
                return Err(DevError::ReadBack { table, source });
            }
            // An order with no events yet (or none readable) has no latency to tell.
            Err(_) => {}
        }
    }
    Ok(Latency::of(&journeys))
}

/// Folds every placed order's stream into its outcome, and reads each catalogue sku's stock.
async fn outcomes_and_stock(
    clients: &Clients,
    deployment: &Deployment,
    order_ids: &[&str],
) -> Result<(OrderOutcomes, Vec<StockLevel>), DevError> {
    let Some((outcomes, confirmed_units)) = outcomes(clients, deployment, order_ids).await? else {
        return Ok((OrderOutcomes::default(), Vec::new()));
    };
    let mut stock = Vec::new();
    for (item, level) in CATALOGUE
        .iter()
        .zip(stock_levels(clients, deployment).await?)
    {
        stock.push(StockLevel {
            sku: item.sku.to_owned(),
            seeded: item.stock,
            available: level.available,
            allocated: level.allocated,
            confirmed_units: confirmed_units.get(item.sku).copied().unwrap_or(0),
        });
    }
    Ok((outcomes, stock))
}

/// Folds every order's stream into its outcome, with the units per sku of those confirmed;
/// `None` when the stack has no event store.
pub(crate) async fn outcomes(
    clients: &Clients,
    deployment: &Deployment,
    order_ids: &[&str],
) -> Result<Option<(OrderOutcomes, BTreeMap<String, u64>)>, DevError> {
    let mut outcomes = OrderOutcomes::default();
    let mut confirmed_units: BTreeMap<String, u64> = BTreeMap::new();
    let Some(store) = store(clients, deployment) else {
        return Ok(None);
    };
    for id in order_ids {
        let order: Loaded<Order> = store.load(id).await.map_err(read_failed(&store))?;
        let Some(placed) = order.state.placed.as_ref() else {
            outcomes.pending += 1;
            continue;
        };
        outcomes.count(&order.state);
        if order.state.status == OrderStatus::Confirmed {
            for line in &placed.lines {
                *confirmed_units.entry(line.sku.clone()).or_default() += u64::from(line.quantity);
            }
        }
    }
    Ok(Some((outcomes, confirmed_units)))
}

/// Each catalogue sku's stock as its stream folds, in [`CATALOGUE`]'s order (none without an
/// event store).
pub(crate) async fn stock_levels(
    clients: &Clients,
    deployment: &Deployment,
) -> Result<Vec<Stock>, DevError> {
    let Some(store) = store(clients, deployment) else {
        return Ok(Vec::new());
    };
    let mut levels = Vec::new();
    for item in CATALOGUE {
        let level: Loaded<Stock> = store.load(item.sku).await.map_err(read_failed(&store))?;
        levels.push(level.state);
    }
    Ok(levels)
}

fn store(clients: &Clients, deployment: &Deployment) -> Option<DynamoEventStore> {
    let table = deployment.events_table()?;
    Some(DynamoEventStore::new(clients.dynamodb.clone(), table))
}

fn read_failed(store: &DynamoEventStore) -> impl Fn(StoreError) -> DevError + '_ {
    move |source| DevError::ReadBack {
        table: store.table().to_owned(),
        source,
    }
}

/// Event items (kind = "event") in the events table, by type; pages through the whole scan.
async fn count_events(
    clients: &Clients,
    deployment: &Deployment,
) -> Result<BTreeMap<String, u64>, DevError> {
    let mut by_type = BTreeMap::new();
    let Some(table) = deployment.events_table() else {
        return Ok(by_type);
    };
    let mut pages = clients
        .dynamodb
        .scan()
        .table_name(&table)
        .filter_expression("#kind = :event")
        .projection_expression("#type")
        .expression_attribute_names("#kind", "kind")
        .expression_attribute_names("#type", "type")
        .expression_attribute_values(":event", AttributeValue::S("event".into()))
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| DevError::Count {
            table: table.clone(),
            source: e.into(),
        })?;
        for item in page.items() {
            let event_type = item
                .get("type")
                .and_then(|t| t.as_s().ok())
                .cloned()
                .unwrap_or_else(|| "(untyped)".to_owned());
            *by_type.entry(event_type).or_insert(0) += 1;
        }
    }
    Ok(by_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stock_is_conserved_only_when_every_unit_is_accounted_for() {
        let level = |available, allocated, confirmed_units| StockLevel {
            sku: "A".into(),
            seeded: 10,
            available,
            allocated,
            confirmed_units,
        };
        assert!(level(7, 3, 3).conserved());
        assert!(
            !level(7, 3, 2).conserved(),
            "units allocated to no confirmed order"
        );
        assert!(!level(8, 3, 3).conserved(), "a unit created");
        assert!(!level(6, 3, 3).conserved(), "a unit lost");
    }
}
