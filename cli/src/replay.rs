//! `ripple replay views|events`: the recovery paths from the event store, both idempotent.
//!
//! `views` rebuilds order views (one order, or every order the store holds) as the fold of their
//! streams ([`rebuild_from`]) and writes each that differs, under the views table's version
//! check: a projection writing meanwhile makes the rebuild reload and fold again, never lose its
//! write. A view item that is not readable at all is deleted and written afresh. `events` is
//! `ripple republish` under this name: a time range of stored events published again.

use std::io::IsTerminal as _;

use aws_sdk_dynamodb::Client as DynamoClient;
use aws_sdk_dynamodb::types::AttributeValue;
use domain::order::Order;
use domain::views::{DynamoViewStore, ViewStore, ViewStoreError, attr, rebuild_from};
use indicatif::{ProgressBar, ProgressStyle};
use ripple_kit::Aggregate;
use ripple_kit::envelope::EnvelopeError;
use ripple_kit::store::{DynamoEventStore, StoreError};
use serde::Serialize;

use crate::provision::Deployment;
use crate::republish::{RepublishArgs, RepublishError};
use crate::stack::{Session, StackArgs, StackError, confirm};

/// How many times a rebuild reloads after a projection wrote the same view meanwhile.
const CONFLICT_ATTEMPTS: usize = 5;

/// Options of `ripple replay`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ripple replay views --stack ripple --order 01a2076b-43f1-707c-8a9e-5b7d2c48e6a1
  ripple replay views --stack ripple --yes --json
  ripple replay events --stack ripple --from 6h --yes")]
pub struct ReplayArgs {
    /// What to replay.
    #[command(subcommand)]
    pub command: ReplayCommand,
}

/// The `ripple replay` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ReplayCommand {
    /// Rebuild order views from the store: one order, or all.
    Views(ViewsArgs),
    /// Publish a time range of stored events again (the same as `ripple republish`).
    Events(RepublishArgs),
}

/// Options of `ripple replay views`.
#[derive(Debug, Clone, clap::Args)]
pub struct ViewsArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Only this order [default: every order in the store].
    #[arg(long)]
    pub order: Option<String>,
    /// Rebuild without asking.
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON object on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// Why `ripple replay views` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The stack could not be found.
    #[error("stack")]
    Stack(#[from] StackError),
    /// The stack has no events table or no views table.
    #[error("the stack has no {0}")]
    Missing(&'static str),
    /// The store could not be read.
    #[error("reading the events table")]
    Store(#[from] StoreError),
    /// A stored event does not decode.
    #[error("a stored event does not decode")]
    Envelope(#[from] EnvelopeError),
    /// The views table failed.
    #[error("the views table")]
    Views(#[from] ViewStoreError),
    /// The order has no events.
    #[error("the store holds no events of order {0}")]
    NoOrder(String),
    /// Listing the orders failed.
    #[error("scanning {table} for orders: {message}")]
    Scan {
        /// The events table.
        table: String,
        /// The SDK's error chain.
        message: String,
    },
    /// Not confirmed.
    #[error("nothing rebuilt: {0}")]
    NotConfirmed(&'static str),
    /// `replay events` failed.
    #[error("republishing")]
    Republish(#[from] RepublishError),
}

impl ReplayError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            ReplayError::Stack(err) => err.hint(),
            ReplayError::NotConfirmed(_) => Some("pass --yes to rebuild without asking".into()),
            ReplayError::Republish(err) => err.hint(),
            _ => None,
        }
    }
}

/// What `ripple replay views` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ViewsReport {
    /// Orders whose view was compared with the fold of their streams.
    pub examined: usize,
    /// Views written, because they differed (or were missing or unreadable).
    pub rebuilt: usize,
    /// The orders whose view was rebuilt.
    pub orders_rebuilt: Vec<String>,
}

/// The views table and the event store of a stack.
pub struct Views {
    store: DynamoEventStore,
    views: DynamoViewStore,
    dynamodb: DynamoClient,
    events_table: String,
}

impl Views {
    /// The tables of `deployment`, through `dynamodb`.
    pub fn of(deployment: &Deployment, dynamodb: &DynamoClient) -> Result<Self, ReplayError> {
        let events_table = deployment
            .events_table()
            .ok_or(ReplayError::Missing("events table"))?;
        let views_table = deployment
            .function_by_binary("projections")
            .and_then(|f| f.environment.get("VIEWS_TABLE"))
            .ok_or(ReplayError::Missing(
                "views table (projections' VIEWS_TABLE)",
            ))?;
        Ok(Views {
            store: DynamoEventStore::new(dynamodb.clone(), events_table.clone()),
            views: DynamoViewStore::new(dynamodb.clone(), views_table.clone()),
            dynamodb: dynamodb.clone(),
            events_table,
        })
    }

    /// Rebuilds the view of `order_id` if it is not the fold of its streams; true if it wrote.
    pub async fn rebuild(&self, order_id: &str) -> Result<bool, ReplayError> {
        for _ in 0..CONFLICT_ATTEMPTS {
            let folded = rebuild_from::<_, ReplayError>(&self.store, order_id).await?;
            if folded.events_applied() == 0 {
                return Err(ReplayError::NoOrder(order_id.to_owned()));
            }
            let expected = match self.views.get(order_id).await {
                Ok(Some(stored)) if stored.view == folded => return Ok(false),
                Ok(Some(stored)) => stored.version,
                Ok(None) => 0,
                Err(ViewStoreError::Corrupt { .. }) => {
                    self.delete_unreadable(order_id).await?;
                    0
                }
                Err(err) => return Err(err.into()),
            };
            match self.views.put(&folded, expected).await {
                Ok(()) => return Ok(true),
                Err(ViewStoreError::Conflict { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
        Err(ViewStoreError::Conflict {
            order_id: order_id.to_owned(),
        }
        .into())
    }

    async fn delete_unreadable(&self, order_id: &str) -> Result<(), ReplayError> {
        self.dynamodb
            .delete_item()
            .table_name(self.views.table())
            .key(attr::ID, AttributeValue::S(order_id.to_owned()))
            .send()
            .await
            .map_err(|e| ViewStoreError::Backend(Box::new(e)))?;
        Ok(())
    }

    /// Every order the store holds: the subjects of the `Order` streams' first events.
    pub async fn orders(&self) -> Result<Vec<String>, ReplayError> {
        let prefix = format!("{}#", Order::TYPE);
        let mut orders = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .dynamodb
                .scan()
                .table_name(&self.events_table)
                .filter_expression("begins_with(pk, :order) AND sk = :first")
                .expression_attribute_values(":order", AttributeValue::S(prefix.clone()))
                .expression_attribute_values(":first", AttributeValue::N("1".into()))
                .projection_expression("pk")
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| ReplayError::Scan {
                    table: self.events_table.clone(),
                    message: ripple_kit::telemetry::error_chain(&e),
                })?;
            orders.extend(page.items().iter().filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk.strip_prefix(&prefix).map(str::to_owned),
                _ => None,
            }));
            start = page.last_evaluated_key;
            if start.is_none() {
                break;
            }
        }
        orders.sort();
        Ok(orders)
    }
}

/// Runs `ripple replay`: the text to print, and whether everything was done (`events` exits 1
/// when an event was not published).
pub async fn run(args: &ReplayArgs) -> Result<(String, bool), ReplayError> {
    match &args.command {
        ReplayCommand::Views(views) => replay_views(views).await.map(|t| (t, true)),
        ReplayCommand::Events(events) => Ok(crate::republish::run(events).await?),
    }
}

async fn replay_views(args: &ViewsArgs) -> Result<String, ReplayError> {
    let session = Session::open_operator(&args.stack).await?;
    let deployment = session.lookup().await?;
    let views = Views::of(&deployment, &session.connection.clients.dynamodb)?;
    let orders = match &args.order {
        Some(order) => vec![order.clone()],
        None => views.orders().await?,
    };
    if !args.yes {
        confirm(&format!(
            "Rebuild the views of {} order(s) of {} from the store?",
            orders.len(),
            deployment.stack_name
        ))
        .map_err(ReplayError::NotConfirmed)?;
    }
    let bar = if args.json || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(orders.len() as u64)
    };
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} views {msg}") {
        bar.set_style(style);
    }
    let mut report = ViewsReport::default();
    for order in &orders {
        if views.rebuild(order).await? {
            report.rebuilt += 1;
            report.orders_rebuilt.push(order.clone());
        }
        report.examined += 1;
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(if args.json {
        serde_json::to_string(&report).unwrap_or_default() + "\n"
    } else {
        format!(
            "{} of {} order views rebuilt from the store of {}; the others were already its fold\n",
            report.rebuilt, report.examined, deployment.stack_name
        )
    })
}
