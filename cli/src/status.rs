//! `ripple status`: one screen on a stack: its functions and what triggers them, every queue's
//! depth (dead-letter and quarantine queues apart), the event store's stream, the latest dead
//! letters' reasons, and the orders by state as the read model has them.
//!
//! It only reads: a dead letter read for its reason is made visible again at once.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde_json::Value;

use crate::dev::summary::{QueueDepths, QueueSummary};
use crate::dlq::{Contents, dead_letter_queues};
use crate::provision::{Clients, Deployment, Origin};
use crate::stack::{Session, StackArgs, StackError};

/// How many dead letters of each queue are read for their reasons.
const LETTERS_READ: usize = 10;

/// Options of `ripple status`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ripple status --stack ripple
  ripple status --stack ripple --json")]
pub struct StatusArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Print one JSON object on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// Why `ripple status` could not look.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The stack could not be found.
    #[error("stack")]
    Stack(#[from] StackError),
    /// A request failed.
    #[error("{what}: {message}")]
    Read {
        /// What was read.
        what: String,
        /// The SDK's error chain.
        message: String,
    },
    /// Reading the dead letters failed.
    #[error("dead-letter queues")]
    Dlq(#[from] crate::dlq::DlqError),
}

impl StatusError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            StatusError::Stack(err) => err.hint(),
            _ => None,
        }
    }
}

fn read_error<E: std::error::Error + 'static>(what: String) -> impl FnOnce(E) -> StatusError {
    move |err| StatusError::Read {
        what,
        message: ripple_kit::telemetry::error_chain(&err),
    }
}

/// What `ripple status` shows.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The stack.
    pub stack: String,
    /// Who made it (for a CloudFormation stack: its ARN, status and outputs).
    pub origin: Origin,
    /// Each function's triggers, by logical id.
    pub functions: BTreeMap<String, Vec<String>>,
    /// Each queue's role and depth, by name.
    pub queues: BTreeMap<String, QueueSummary>,
    /// Messages in dead-letter queues.
    pub dead_lettered: u64,
    /// Records the outbox quarantined.
    pub quarantined: u64,
    /// The event store's stream: its status (`ENABLED`), or what is wrong.
    pub stream: String,
    /// The reasons of the latest dead letters, with how many of those read have each.
    pub last_errors: BTreeMap<String, usize>,
    /// Orders by the read model's status.
    pub orders: BTreeMap<String, u64>,
}

impl Status {
    fn render(&self) -> String {
        let mut out = format!(
            "stack {}{}\n",
            self.stack,
            crate::stack::origin(&self.origin)
        );
        if let Origin::CloudFormation { outputs, .. } = &self.origin
            && let Some(url) = outputs.get("ApiUrl")
        {
            let _ = writeln!(out, "api {url}");
        }
        out.push_str("\nfunctions\n");
        for (id, triggers) in &self.functions {
            let _ = writeln!(out, "  {id:<26} {}", triggers.join(", "));
        }
        let _ = writeln!(out, "\nqueues{:>44}", "messages");
        for (name, queue) in &self.queues {
            let _ = writeln!(out, "  {name:<40} {:>8}  {}", queue.messages, queue.role);
        }
        let _ = writeln!(
            out,
            "\nevent store stream: {}\ndead-lettered: {}   quarantined by the outbox: {}",
            self.stream, self.dead_lettered, self.quarantined
        );
        if !self.last_errors.is_empty() {
            let _ = writeln!(out, "\nlatest dead letters (ripple dlq list for all)");
            for (reason, n) in &self.last_errors {
                let _ = writeln!(out, "  {n:>5}  {reason}");
            }
        }
        let total: u64 = self.orders.values().sum();
        let _ = writeln!(out, "\norders ({total})");
        for (status, n) in &self.orders {
            let _ = writeln!(out, "  {status:<12} {n:>8}");
        }
        out
    }
}

/// The event store stream's status: `ENABLED`, or what is wrong with it.
async fn stream_status(clients: &Clients, deployment: &Deployment) -> String {
    let Some(table) = deployment.events_table() else {
        return "no events table".into();
    };
    let Some(arn) = deployment
        .tables
        .values()
        .find(|t| t.name == table)
        .and_then(|t| t.stream_arn.clone())
    else {
        return format!("{table} has no stream: nothing is published");
    };
    match clients
        .streams
        .describe_stream()
        .stream_arn(&arn)
        .send()
        .await
    {
        Ok(out) => out
            .stream_description()
            .and_then(|d| d.stream_status())
            .map_or("unknown".into(), |s| s.as_str().to_owned()),
        Err(err) => format!(
            "cannot describe: {}",
            ripple_kit::telemetry::error_chain(&err)
        ),
    }
}

/// Orders by status, from the views table (the read model `GET /orders/{id}` serves).
async fn orders_by_status(
    clients: &Clients,
    deployment: &Deployment,
) -> Result<BTreeMap<String, u64>, StatusError> {
    let mut counts = BTreeMap::new();
    let Some(table) = deployment
        .function_by_binary("projections")
        .and_then(|f| f.environment.get("VIEWS_TABLE"))
    else {
        return Ok(counts);
    };
    let mut start = None;
    loop {
        let page = clients
            .dynamodb
            .scan()
            .table_name(table)
            .projection_expression("#v")
            .expression_attribute_names("#v", domain::views::attr::VIEW)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(read_error(format!("scanning {table}")))?;
        for item in page.items() {
            let status = match item.get(domain::views::attr::VIEW) {
                Some(AttributeValue::S(json)) => serde_json::from_str::<Value>(json)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_owned))
                    .unwrap_or_else(|| "unreadable".into()),
                _ => "unreadable".into(),
            };
            *counts.entry(status).or_default() += 1;
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return Ok(counts);
        }
    }
}

/// Looks at the stack.
pub async fn status(clients: &Clients, deployment: &Deployment) -> Result<Status, StatusError> {
    let depths = QueueDepths::read(clients, deployment).await;
    let mut last_errors = BTreeMap::new();
    for dlq in dead_letter_queues(deployment) {
        if depths
            .by_name
            .get(&dlq.queue.name)
            .is_none_or(|q| q.messages == 0)
        {
            continue;
        }
        let read = Contents::read(&clients.sqs, dlq, LETTERS_READ).await?;
        read.release(&clients.sqs).await?;
        for (reason, ids) in read.by_reason() {
            *last_errors.entry(reason).or_default() += ids.len();
        }
    }
    Ok(Status {
        stack: deployment.stack_name.clone(),
        origin: deployment.origin.clone(),
        functions: deployment
            .functions
            .iter()
            .map(|(id, f)| {
                (
                    id.clone(),
                    f.events.iter().map(|e| deployment.trigger(e)).collect(),
                )
            })
            .collect(),
        dead_lettered: depths.dead_letter,
        quarantined: depths.on_failure,
        queues: depths.by_name,
        stream: stream_status(clients, deployment).await,
        last_errors,
        orders: orders_by_status(clients, deployment).await?,
    })
}

/// Runs `ripple status`.
pub async fn run(args: &StatusArgs) -> Result<String, StatusError> {
    let session = Session::open_operator(&args.stack).await?;
    let deployment = session.lookup().await?;
    let status = status(&session.connection.clients, &deployment).await?;
    Ok(if args.json {
        serde_json::to_string(&status).unwrap_or_default() + "\n"
    } else {
        status.render()
    })
}
