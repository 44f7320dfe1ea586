//! What the emulator holds at the end of a soak, read with the harness's own clients (never
//! through the fault plan): every item of the event store, every order view, every message left
//! in a queue no function consumes (the DLQs and on-failure destinations), and the depth of the
//! queues that are consumed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use domain::view::OrderView;
use domain::views::view_from_item;
use ripple_kit::Envelope;

use super::SoakError;
use crate::provision::{Clients, Deployment};
use crate::runtime::sqs;
use crate::template::EventSource;

/// A message found in a queue no function consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SinkMessage {
    /// The queue's name.
    pub queue: String,
    /// Its message id (kept when SQS moves a message to a DLQ).
    pub message_id: String,
    /// Its body.
    pub body: String,
}

/// The store, the views and the queues at the end of a run.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// Every event item, parsed.
    pub events: Vec<Envelope>,
    /// Event items that are not readable events: `pk/sk: why`.
    pub unreadable: Vec<String>,
    /// Every order view, by order id (or why it is unreadable).
    pub views: BTreeMap<String, Result<OrderView, String>>,
    /// Every message in a queue no function consumes.
    pub sinks: Vec<SinkMessage>,
    /// Messages left in each consumed queue (visible, in flight or delayed).
    pub leftovers: BTreeMap<String, u64>,
}

/// Reads everything back.
pub async fn read(clients: &Clients, deployment: &Deployment) -> Result<Stored, SoakError> {
    let mut stored = Stored::default();
    if let Some(table) = deployment.events_table() {
        read_events(clients, &table, &mut stored).await?;
    }
    if let Some(table) = views_table(deployment) {
        stored.views = read_views(clients, &table).await?;
    }
    let consumed = consumed_queues(deployment);
    for queue in deployment.queues.values() {
        if consumed.contains(&queue.logical_id) {
            let depth = sqs::depth(&clients.sqs, &queue.url)
                .await
                .map_err(|e| SoakError::read(&queue.name, e))?;
            stored.leftovers.insert(queue.name.clone(), depth);
        } else {
            stored
                .sinks
                .extend(read_sink(clients, &queue.name, &queue.url).await?);
        }
    }
    Ok(stored)
}

/// Every event of the store (the rest of [`Stored`] left empty): what the soak reads while it
/// runs, without receiving from the sinks.
pub async fn read_store(clients: &Clients, deployment: &Deployment) -> Result<Stored, SoakError> {
    let mut stored = Stored::default();
    if let Some(table) = deployment.events_table() {
        read_events(clients, &table, &mut stored).await?;
    }
    Ok(stored)
}

/// Logical ids of the queues some function is triggered by.
pub fn consumed_queues(deployment: &Deployment) -> Vec<String> {
    deployment
        .functions
        .values()
        .flat_map(|f| &f.events)
        .filter_map(|e| match e {
            EventSource::Sqs(source) => Some(source.queue.clone()),
            _ => None,
        })
        .collect()
}

/// The order views table: the one the projections function writes.
fn views_table(deployment: &Deployment) -> Option<String> {
    deployment
        .function_by_binary("projections")
        .and_then(|f| f.environment.get("VIEWS_TABLE").cloned())
}

/// Every item of `table`, through `each`, across all scan pages (consistent reads).
async fn scan(
    clients: &Clients,
    table: &str,
    mut each: impl FnMut(&HashMap<String, AttributeValue>),
) -> Result<(), SoakError> {
    let mut pages = clients
        .dynamodb
        .scan()
        .table_name(table)
        .consistent_read(true)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| SoakError::read(table, e))?;
        page.items().iter().for_each(&mut each);
    }
    Ok(())
}

async fn read_events(clients: &Clients, table: &str, stored: &mut Stored) -> Result<(), SoakError> {
    scan(clients, table, |item| {
        let text = |name: &str| match item.get(name) {
            Some(AttributeValue::S(s)) => Some(s.as_str()),
            Some(AttributeValue::N(n)) => Some(n.as_str()),
            _ => None,
        };
        if text("kind") != Some("event") {
            return;
        }
        let at = format!(
            "{}/{}",
            text("pk").unwrap_or("?"),
            text("sk").unwrap_or("?")
        );
        match text("envelope").map(Envelope::from_json) {
            Some(Ok(envelope)) => stored.events.push(envelope),
            Some(Err(err)) => stored.unreadable.push(format!(
                "{at}: {}",
                ripple_kit::telemetry::error_chain(&err)
            )),
            None => stored.unreadable.push(format!("{at}: no string envelope")),
        }
    })
    .await
}

async fn read_views(
    clients: &Clients,
    table: &str,
) -> Result<BTreeMap<String, Result<OrderView, String>>, SoakError> {
    let mut views = BTreeMap::new();
    scan(clients, table, |item| {
        if let Some(AttributeValue::S(id)) = item.get(domain::views::attr::ID) {
            let view = view_from_item(id, item)
                .map(|stored| stored.view)
                .map_err(|e| e.to_string());
            views.insert(id.clone(), view);
        }
    })
    .await?;
    Ok(views)
}

/// Every message of a queue, received under a long visibility timeout so each comes once.
async fn read_sink(
    clients: &Clients,
    name: &str,
    url: &str,
) -> Result<Vec<SinkMessage>, SoakError> {
    let mut messages = Vec::new();
    let mut empty_receives = 0;
    while empty_receives < 2 {
        let received = clients
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .visibility_timeout(i32::try_from(Duration::from_secs(3600).as_secs()).unwrap_or(3600))
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .map_err(|e| SoakError::read(name, e))?;
        let batch = received.messages.unwrap_or_default();
        if batch.is_empty() {
            empty_receives += 1;
            continue;
        }
        messages.extend(batch.into_iter().map(|m| SinkMessage {
            queue: name.to_owned(),
            message_id: m.message_id.unwrap_or_default(),
            body: m.body.unwrap_or_default(),
        }));
    }
    Ok(messages)
}
