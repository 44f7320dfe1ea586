//! `ripple republish`: publish a time range of stored events again, from the store itself.
//!
//! The outbox never gives up on an event, but an operator may need to publish some again: the
//! stream keeps records for 24 hours and an outage outlasted it, or the outbox quarantined an
//! event whose cause is now fixed. This reads the range from the store's time index and
//! publishes it to the topic the outbox publishes to, as the outbox would
//! ([`ripple_kit::outbox::republish`]): only events found at their own stream position and
//! written by a source [`domain::producers`] lets write them. In AWS the topic takes messages
//! only from the outbox's role and the stack's `RepublishRole`: run the command with the
//! latter's credentials. Consumers deduplicate, so publishing an event they
//! already have changes nothing: a range may be given generously.
//!
//! `--stack` finds the stack as every operator command does ([`crate::stack::Session::lookup`]:
//! through CloudFormation, else by the runner's names in the emulator); on a terminal the
//! command asks before it publishes, elsewhere it needs `--yes`.

use std::io::IsTerminal as _;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use ripple_kit::outbox::{RepublishReport, republish};
use ripple_kit::publish::SnsPublisher;
use ripple_kit::store::{DynamoEventStore, StoreError, TimeRange};
use serde_json::json;

use crate::provision::{Clients, Deployment};
use crate::stack::{Session, StackArgs, StackError, confirm};
use crate::template::EventSource;

/// Options of `ripple republish`.
#[derive(Debug, Clone, clap::Args)]
pub struct RepublishArgs {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// The first instant of the range: RFC 3339 (`2026-05-01T12:00:00Z`) or a time ago (`90m`,
    /// `6h`, `2d`).
    #[arg(long)]
    pub from: String,
    /// The first instant after the range, in the same forms [default: now].
    #[arg(long)]
    pub to: Option<String>,
    /// Publish without asking.
    #[arg(long)]
    pub yes: bool,
    /// Print one JSON object with the figures on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// Why `ripple republish` did not publish the range.
#[derive(Debug, thiserror::Error)]
pub enum RepublishError {
    /// The stack could not be found.
    #[error("stack")]
    Stack(#[from] StackError),
    /// A time is not one the command reads.
    #[error(
        "--{flag} {value:?} is not a time: give RFC 3339 (2026-05-01T12:00:00Z) or a time ago (90m, 6h, 2d)"
    )]
    BadTime {
        /// The flag.
        flag: &'static str,
        /// What it was given.
        value: String,
    },
    /// The range holds no instant.
    #[error("the range is empty: --to ({to}) is not after --from ({from})")]
    EmptyRange {
        /// The start.
        from: DateTime<Utc>,
        /// The end.
        to: DateTime<Utc>,
    },
    /// The template has no outbox to publish as.
    #[error(
        "the stack has no outbox-publisher function reading an events table's stream with a TOPIC_ARN"
    )]
    NoOutbox,
    /// Not confirmed.
    #[error("nothing published: {0}")]
    NotConfirmed(&'static str),
    /// The store could not be read.
    #[error("reading the events table")]
    Store(#[from] StoreError),
}

impl RepublishError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            RepublishError::Stack(err) => err.hint(),
            RepublishError::NotConfirmed(_) => Some("pass --yes to publish without asking".into()),
            _ => None,
        }
    }
}

/// Where a stack's outbox reads and publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxOf {
    /// The events table.
    pub table: String,
    /// The topic.
    pub topic_arn: String,
}

impl OutboxOf {
    /// The outbox of `deployment`: the outbox publisher's topic and the table whose stream it
    /// reads.
    pub fn find(deployment: &Deployment) -> Option<Self> {
        let function = deployment.function_by_binary("outbox-publisher")?;
        let topic_arn = function.environment.get("TOPIC_ARN")?.clone();
        let table = function.events.iter().find_map(|e| match e {
            EventSource::DynamoDb(s) => deployment.table(&s.table).map(|t| t.name.clone()),
            _ => None,
        })?;
        Some(OutboxOf { table, topic_arn })
    }
}

/// Publishes every event the outbox's table holds in `range` to its topic.
pub async fn republish_range(
    clients: &Clients,
    outbox: &OutboxOf,
    range: &TimeRange,
    progress: impl FnMut(&RepublishReport),
) -> Result<RepublishReport, StoreError> {
    let store = DynamoEventStore::new(clients.dynamodb.clone(), &outbox.table);
    let publisher = SnsPublisher::new(clients.sns.clone(), &outbox.topic_arn);
    let producers = domain::producers();
    republish(&store, &publisher, range, Some(&producers), progress).await
}

/// Runs `ripple republish`: the report, as text or JSON, and whether every event was published.
pub async fn run(args: &RepublishArgs) -> Result<(String, bool), RepublishError> {
    let now = Utc::now();
    let from = parse_time("from", &args.from, now)?;
    let to = match &args.to {
        Some(to) => parse_time("to", to, now)?,
        None => now,
    };
    if to <= from {
        return Err(RepublishError::EmptyRange { from, to });
    }
    let range = TimeRange::new(from, to);
    let session = Session::open_operator(&args.stack).await?;
    let deployment = session.lookup().await?;
    let outbox = OutboxOf::find(&deployment).ok_or(RepublishError::NoOutbox)?;
    if !args.yes {
        confirm(&format!(
            "Publish every event {} stored from {} to {} to {} again?",
            outbox.table, range.from, range.to, outbox.topic_arn
        ))
        .map_err(RepublishError::NotConfirmed)?;
    }
    let show = !args.json && std::io::stderr().is_terminal();
    let report = republish_range(&session.connection.clients, &outbox, &range, |so_far| {
        if show {
            eprint!("\r{} published of {} found", so_far.published, so_far.found);
        }
    })
    .await?;
    if show {
        eprintln!();
    }
    let text = if args.json {
        render_json(&deployment.stack_name, &range, &outbox, &report)
    } else {
        render(&range, &outbox, &report)
    };
    Ok((text, report.failed.is_empty()))
}

/// `2026-05-01T12:00:00Z`, or a time ago: `30s`, `90m`, `6h`, `2d`.
pub fn parse_time(
    flag: &'static str,
    value: &str,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, RepublishError> {
    let bad = || RepublishError::BadTime {
        flag,
        value: value.to_owned(),
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(value.trim()) {
        return Ok(time.with_timezone(&Utc));
    }
    let value = value.trim();
    let split = value.len().checked_sub(1).ok_or_else(bad)?;
    let (amount, unit) = value.split_at(split);
    let amount: i64 = amount.parse().map_err(|_| bad())?;
    let ago = match unit {
        "s" => TimeDelta::try_seconds(amount),
        "m" => TimeDelta::try_minutes(amount),
        "h" => TimeDelta::try_hours(amount),
        "d" => TimeDelta::try_days(amount),
        _ => None,
    }
    .filter(|ago| *ago >= TimeDelta::zero())
    .ok_or_else(bad)?;
    now.checked_sub_signed(ago).ok_or_else(bad)
}

fn render(range: &TimeRange, outbox: &OutboxOf, report: &RepublishReport) -> String {
    let mut out = format!(
        "republished {} of {} events stored in {} from {} to {} to {}\n",
        report.published, report.found, outbox.table, range.from, range.to, outbox.topic_arn
    );
    for failure in &report.failed {
        out.push_str(&format!(
            "  not published: {} ({}: {})\n",
            failure.event_id, failure.code, failure.reason
        ));
    }
    out
}

fn render_json(
    stack: &str,
    range: &TimeRange,
    outbox: &OutboxOf,
    report: &RepublishReport,
) -> String {
    let failed: Vec<_> = report
        .failed
        .iter()
        .map(|f| json!({"event_id": f.event_id, "code": f.code, "reason": f.reason}))
        .collect();
    let doc = json!({
        "stack": stack,
        "from": range.from,
        "to": range.to,
        "table": outbox.table,
        "topic_arn": outbox.topic_arn,
        "found": report.found,
        "published": report.published,
        "failed": failed,
    });
    format!("{doc}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_a_time_ago() {
        let now = Utc::now();
        let at = parse_time("from", "2026-05-01T12:00:00Z", now).unwrap();
        assert_eq!(at.to_rfc3339(), "2026-05-01T12:00:00+00:00");
        assert_eq!(
            parse_time("from", "90m", now).unwrap(),
            now - TimeDelta::minutes(90)
        );
        assert_eq!(
            parse_time("from", "2d", now).unwrap(),
            now - TimeDelta::days(2)
        );
        for bad in ["", "yesterday", "5w", "-3h", "h"] {
            assert!(
                matches!(
                    parse_time("from", bad, now),
                    Err(RepublishError::BadTime { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
