//! `ripple dlq list|show|redrive`: what the dead-letter queues of a stack hold, and moving what
//! can be retried back to where it came from.
//!
//! Every consumer queue has a redrive DLQ (a message its function failed `maxReceiveCount`
//! times) and every subscription one (a message SNS could not deliver to the queue). Either way
//! the message came from, and goes back to, the consumer queue. The reason a message is there is
//! read from the message itself, with the kit's own parser: an unreadable body is poison (moving
//! it back only dead-letters it again, so redrive leaves it unless told), a readable event names
//! its type, stream and source (its handler's error is in the function's log).
//!
//! Reading a queue hides its messages for a while; every message read and not moved is made
//! visible again at once. A redrive sends a copy to the source queue, then deletes the letter: a
//! crash between the two leaves a duplicate, which the consumers' dedupe absorbs, never a loss.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use aws_sdk_sqs::Client as SqsClient;
use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, Message, MessageAttributeValue,
    MessageSystemAttributeName,
};
use ripple_kit::Envelope;
use serde::Serialize;
use serde_json::{Value, json};

use crate::provision::{DeployedQueue, Deployment};
use crate::stack::{Session, StackArgs, StackError, confirm};

/// How long a message read by `ripple dlq` stays hidden if the command dies before it makes it
/// visible again.
const READ_VISIBILITY_SECONDS: i32 = 60;

/// Options of `ripple dlq`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:
  ripple dlq list --stack ripple
  ripple dlq show --stack ripple --queue inventory
  ripple dlq redrive --stack ripple --queue inventory --type order.placed --yes")]
pub struct DlqArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DlqCommand,
}

/// The `ripple dlq` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum DlqCommand {
    /// Each dead-letter queue: its source, how many messages it holds, grouped by reason.
    List(DlqOptions),
    /// One message in full (the first one, or `--message ID`).
    Show(ShowArgs),
    /// Move messages back to their source queue: every readable one, or those of `--type` or
    /// whose reason contains `--reason`.
    Redrive(RedriveArgs),
}

/// What every `ripple dlq` subcommand takes.
#[derive(Debug, Clone, clap::Args)]
pub struct DlqOptions {
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
    /// Only this dead-letter queue: a consumer (`inventory`), a queue name or a logical id.
    #[arg(long)]
    pub queue: Option<String>,
    /// At most this many messages read from each queue.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// Print JSON on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
}

/// Options of `ripple dlq show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// What every subcommand takes.
    #[command(flatten)]
    pub options: DlqOptions,
    /// The SQS message id of the message to show.
    #[arg(long)]
    pub message: Option<String>,
}

/// Options of `ripple dlq redrive`.
#[derive(Debug, Clone, clap::Args)]
pub struct RedriveArgs {
    /// What every subcommand takes.
    #[command(flatten)]
    pub options: DlqOptions,
    /// Only events of this type (`order.placed`).
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// Only messages whose reason contains this text.
    #[arg(long)]
    pub reason: Option<String>,
    /// Move unreadable messages too (they will fail again unless their consumer was fixed).
    #[arg(long)]
    pub include_unreadable: bool,
    /// Move without asking.
    #[arg(long)]
    pub yes: bool,
}

/// Why a `ripple dlq` command failed.
#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    /// The stack could not be found.
    #[error("stack")]
    Stack(#[from] StackError),
    /// `--queue` names no dead-letter queue of the stack.
    #[error("the stack has no dead-letter queue {asked} (its dead-letter queues: {known})")]
    UnknownQueue {
        /// What was asked for.
        asked: String,
        /// The ones there are.
        known: String,
    },
    /// `--message` is not in the queues read.
    #[error("no message {0} in the dead-letter queues read")]
    NoMessage(String),
    /// The queues read hold nothing.
    #[error("the dead-letter queues read are empty")]
    Empty,
    /// Not confirmed.
    #[error("nothing moved: {0}")]
    NotConfirmed(&'static str),
    /// An SQS request failed.
    #[error("SQS {operation} on {queue} failed: {message}")]
    Sqs {
        /// The operation.
        operation: &'static str,
        /// The queue.
        queue: String,
        /// The SDK's error chain.
        message: String,
    },
}

impl DlqError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            DlqError::Stack(err) => err.hint(),
            DlqError::NotConfirmed(_) => Some("pass --yes to move without asking".into()),
            DlqError::NoMessage(_) => Some("`ripple dlq list` shows the message ids".into()),
            _ => None,
        }
    }
}

/// A dead-letter queue and the queue its messages came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetterQueue {
    /// The dead-letter queue.
    pub queue: DeployedQueue,
    /// The consumer queue its messages came from and go back to.
    pub source: DeployedQueue,
    /// `redrive` (its function failed them) or `delivery` (SNS could not deliver them).
    pub kind: &'static str,
}

/// The dead-letter queues of `deployment`: each consumer queue's redrive DLQ and each
/// subscription's, with the consumer queue they belong to.
pub fn dead_letter_queues(deployment: &Deployment) -> Vec<DeadLetterQueue> {
    let pair = |dlq: &str, source: &str, kind| {
        Some(DeadLetterQueue {
            queue: deployment.queues.get(dlq)?.clone(),
            source: deployment.queues.get(source)?.clone(),
            kind,
        })
    };
    let redrive = deployment.stack.queues.iter().filter_map(|q| {
        let redrive = q.redrive.as_ref()?;
        pair(&redrive.dead_letter_queue, &q.logical_id, "redrive")
    });
    let delivery = deployment.stack.subscriptions.iter().filter_map(|s| {
        let dlq = s.dead_letter_queue.as_ref()?;
        pair(dlq, &s.queue, "delivery")
    });
    let mut all: Vec<DeadLetterQueue> = redrive.chain(delivery).collect();
    all.sort_by(|a, b| a.queue.name.cmp(&b.queue.name));
    all
}

/// Why a message is dead-lettered, as far as the message itself tells.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// Not an event the kit can read: poison.
    Unreadable {
        /// What the parser said.
        error: String,
    },
    /// A readable event: its handler failed it (see the function's log) or SNS could not
    /// deliver it.
    Event {
        /// The event type.
        event_type: String,
        /// Its stream (`Order#o-1`) and sequence.
        stream: String,
        /// Who wrote it.
        source: String,
    },
}

impl Reason {
    /// The reason of a message with `body`.
    pub fn of(body: &str) -> Self {
        match Envelope::from_json(body).and_then(|e| e.validate().map(|()| e)) {
            Ok(event) => Reason::Event {
                stream: format!("{}@{}", event.stream_key(), event.sequence),
                event_type: event.event_type,
                source: event.source,
            },
            Err(err) => Reason::Unreadable {
                error: err.to_string(),
            },
        }
    }

    /// The line messages are grouped under.
    pub fn label(&self) -> String {
        match self {
            Reason::Unreadable { error } => format!("unreadable: {error}"),
            Reason::Event { event_type, .. } => {
                format!(
                    "{event_type} (a readable event: its handler's error is in the function's log)"
                )
            }
        }
    }
}

/// One dead-lettered message.
#[derive(Debug, Clone, Serialize)]
pub struct Letter {
    /// Its SQS message id.
    pub message_id: String,
    /// The body, as sent.
    pub body: String,
    /// Why it is there.
    pub reason: Reason,
    /// How many times it was received (in its source queue, then here).
    pub receive_count: Option<u32>,
    /// When it was first sent (epoch milliseconds).
    pub sent_at: Option<u64>,
    #[serde(skip)]
    receipt: String,
    #[serde(skip)]
    attributes: Option<std::collections::HashMap<String, MessageAttributeValue>>,
    /// Its message group, in a FIFO queue.
    #[serde(skip)]
    group: Option<String>,
}

impl Letter {
    fn from_message(message: Message) -> Option<Self> {
        let system = message.attributes();
        let read = |name: MessageSystemAttributeName| system.and_then(|a| a.get(&name));
        let body = message.body().unwrap_or_default().to_owned();
        Some(Letter {
            message_id: message.message_id()?.to_owned(),
            receipt: message.receipt_handle()?.to_owned(),
            reason: Reason::of(&body),
            receive_count: read(MessageSystemAttributeName::ApproximateReceiveCount)
                .and_then(|v| v.parse().ok()),
            sent_at: read(MessageSystemAttributeName::SentTimestamp).and_then(|v| v.parse().ok()),
            group: read(MessageSystemAttributeName::MessageGroupId).cloned(),
            attributes: message.message_attributes,
            body,
        })
    }

    /// Whether `ripple dlq redrive` with `args` moves it.
    pub fn selected_by(&self, args: &RedriveArgs) -> bool {
        let unreadable = matches!(self.reason, Reason::Unreadable { .. });
        let of_type = match (&args.event_type, &self.reason) {
            (None, _) => true,
            (Some(wanted), Reason::Event { event_type, .. }) => wanted == event_type,
            (Some(_), Reason::Unreadable { .. }) => false,
        };
        let of_reason = args
            .reason
            .as_ref()
            .is_none_or(|text| self.reason.label().contains(text.as_str()));
        (args.include_unreadable || !unreadable) && of_type && of_reason
    }
}

/// What one dead-letter queue holds.
#[derive(Debug, Clone, Serialize)]
pub struct Contents {
    /// The queue and its source.
    pub dlq: DeadLetterQueue,
    /// The messages read (at most `--limit`), hidden until [`Contents::release`].
    pub letters: Vec<Letter>,
}

/// The SQS error of `operation` on `queue`.
fn sqs_error<E: std::error::Error + 'static>(
    operation: &'static str,
    queue: &str,
) -> impl FnOnce(E) -> DlqError {
    move |err| DlqError::Sqs {
        operation,
        queue: queue.to_owned(),
        message: ripple_kit::telemetry::error_chain(&err),
    }
}

impl Contents {
    /// Reads up to `limit` messages of `dlq`, hiding them while the command runs.
    pub async fn read(
        sqs: &SqsClient,
        dlq: DeadLetterQueue,
        limit: usize,
    ) -> Result<Self, DlqError> {
        let mut letters = Vec::new();
        while letters.len() < limit {
            let wanted = (limit - letters.len()).min(10) as i32;
            let received = sqs
                .receive_message()
                .queue_url(&dlq.queue.url)
                .max_number_of_messages(wanted)
                .visibility_timeout(READ_VISIBILITY_SECONDS)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .message_attribute_names("All")
                .send()
                .await
                .map_err(sqs_error("ReceiveMessage", &dlq.queue.name))?;
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                break;
            }
            letters.extend(messages.into_iter().filter_map(Letter::from_message));
        }
        Ok(Contents { dlq, letters })
    }

    /// Makes every message read and not moved visible again.
    pub async fn release(&self, sqs: &SqsClient) -> Result<(), DlqError> {
        for chunk in self.letters.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, letter)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&letter.receipt)
                    .visibility_timeout(0)
                    .build()
            });
            let entries = entries.collect::<Result<Vec<_>, _>>().map_err(sqs_error(
                "ChangeMessageVisibilityBatch",
                &self.dlq.queue.name,
            ))?;
            sqs.change_message_visibility_batch()
                .queue_url(&self.dlq.queue.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(sqs_error(
                    "ChangeMessageVisibilityBatch",
                    &self.dlq.queue.name,
                ))?;
        }
        Ok(())
    }

    /// The messages grouped by reason: label, count and the ids.
    pub fn by_reason(&self) -> BTreeMap<String, Vec<&str>> {
        let mut groups: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for letter in &self.letters {
            groups
                .entry(letter.reason.label())
                .or_default()
                .push(&letter.message_id);
        }
        groups
    }
}

/// The dead-letter queues `--queue` selects.
pub fn selected(
    deployment: &Deployment,
    queue: Option<&str>,
) -> Result<Vec<DeadLetterQueue>, DlqError> {
    let all = dead_letter_queues(deployment);
    let Some(asked) = queue else {
        return Ok(all);
    };
    let chosen: Vec<DeadLetterQueue> = all
        .iter()
        .filter(|d| {
            [
                &d.queue.logical_id,
                &d.queue.name,
                &d.source.logical_id,
                &d.source.name,
            ]
            .iter()
            .any(|name| *name == asked)
                || d.source.name.trim_end_matches(".fifo")
                    == format!("{}-{asked}", deployment.stack_name)
        })
        .cloned()
        .collect();
    if chosen.is_empty() {
        return Err(DlqError::UnknownQueue {
            asked: asked.to_owned(),
            known: all
                .iter()
                .map(|d| d.queue.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Ok(chosen)
}

/// Reads every selected dead-letter queue of the stack.
async fn read_all(options: &DlqOptions) -> Result<(Session, Deployment, Vec<Contents>), DlqError> {
    let session = Session::open_operator(&options.stack).await?;
    let deployment = session.lookup().await?;
    let sqs = &session.connection.clients.sqs;
    let mut read = Vec::new();
    for dlq in selected(&deployment, options.queue.as_deref())? {
        read.push(Contents::read(sqs, dlq, options.limit).await?);
    }
    Ok((session, deployment, read))
}

/// Makes everything read visible again, whatever happened meanwhile.
async fn release_all(sqs: &SqsClient, read: &[Contents]) -> Result<(), DlqError> {
    for contents in read {
        contents.release(sqs).await?;
    }
    Ok(())
}

/// Runs `ripple dlq`; the text (or JSON) to print.
pub async fn run(args: &DlqArgs) -> Result<String, DlqError> {
    match &args.command {
        DlqCommand::List(options) => list(options).await,
        DlqCommand::Show(show) => self::show(show).await,
        DlqCommand::Redrive(redrive) => self::redrive(redrive).await.map(|r| r.render(redrive)),
    }
}

async fn list(options: &DlqOptions) -> Result<String, DlqError> {
    let (session, deployment, read) = read_all(options).await?;
    release_all(&session.connection.clients.sqs, &read).await?;
    if options.json {
        let queues: Vec<Value> = read
            .iter()
            .map(|c| {
                json!({
                    "queue": c.dlq.queue.name,
                    "source": c.dlq.source.name,
                    "kind": c.dlq.kind,
                    "messages": c.letters.len(),
                    "by_reason": c.by_reason(),
                })
            })
            .collect();
        return Ok(json!({"stack": deployment.stack_name, "queues": queues}).to_string() + "\n");
    }
    let mut out = format!("dead-letter queues of {}\n", deployment.stack_name);
    for contents in &read {
        let _ = writeln!(
            out,
            "\n{} ({}, from {}): {} message(s)",
            contents.dlq.queue.name,
            contents.dlq.kind,
            contents.dlq.source.name,
            contents.letters.len()
        );
        for (label, ids) in contents.by_reason() {
            let _ = writeln!(out, "  {:>5}  {label}", ids.len());
            let _ = writeln!(out, "         e.g. {}", ids[0]);
        }
    }
    Ok(out)
}

async fn show(args: &ShowArgs) -> Result<String, DlqError> {
    let (session, _, read) = read_all(&args.options).await?;
    release_all(&session.connection.clients.sqs, &read).await?;
    let found = read.iter().find_map(|c| {
        c.letters
            .iter()
            .find(|l| args.message.as_ref().is_none_or(|id| *id == l.message_id))
            .map(|l| (c, l))
    });
    let Some((contents, letter)) = found else {
        return Err(match &args.message {
            Some(id) => DlqError::NoMessage(id.clone()),
            None => DlqError::Empty,
        });
    };
    let body: Value =
        serde_json::from_str(&letter.body).unwrap_or_else(|_| Value::String(letter.body.clone()));
    let shown = json!({
        "queue": contents.dlq.queue.name,
        "source": contents.dlq.source.name,
        "message_id": letter.message_id,
        "receive_count": letter.receive_count,
        "sent_at": letter.sent_at,
        "reason": letter.reason,
        "body": body,
    });
    Ok(if args.options.json {
        shown.to_string() + "\n"
    } else {
        serde_json::to_string_pretty(&shown).unwrap_or_default() + "\n"
    })
}

/// What `ripple dlq redrive` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Redriven {
    /// Moved back, by dead-letter queue.
    pub moved: BTreeMap<String, usize>,
    /// Left where they were (not selected), by dead-letter queue.
    pub left: BTreeMap<String, usize>,
}

impl Redriven {
    fn render(&self, args: &RedriveArgs) -> String {
        if args.options.json {
            return serde_json::to_string(self).unwrap_or_default() + "\n";
        }
        let moved: usize = self.moved.values().sum();
        let left: usize = self.left.values().sum();
        let mut out = format!("moved {moved} message(s) back to their queues; {left} left\n");
        for (queue, n) in self.moved.iter().filter(|(_, n)| **n > 0) {
            let _ = writeln!(out, "  {n:>5}  from {queue}");
        }
        out
    }
}

/// Moves the selected messages of the selected queues back to their source queue.
pub async fn redrive(args: &RedriveArgs) -> Result<Redriven, DlqError> {
    let (session, _, read) = read_all(&args.options).await?;
    let sqs = &session.connection.clients.sqs;
    let chosen: usize = read
        .iter()
        .map(|c| c.letters.iter().filter(|l| l.selected_by(args)).count())
        .sum();
    if chosen > 0 && !args.yes {
        let question = format!("Move {chosen} message(s) back to their source queues?");
        if let Err(why) = confirm(&question) {
            release_all(sqs, &read).await?;
            return Err(DlqError::NotConfirmed(why));
        }
    }
    let mut report = Redriven::default();
    for contents in read {
        let (chosen, rest): (Vec<Letter>, Vec<Letter>) = contents
            .letters
            .into_iter()
            .partition(|l| l.selected_by(args));
        let name = contents.dlq.queue.name.clone();
        let rest = Contents {
            dlq: contents.dlq.clone(),
            letters: rest,
        };
        let moved = move_back(sqs, &contents.dlq, &chosen).await;
        rest.release(sqs).await?;
        report.moved.insert(name.clone(), moved?);
        report.left.insert(name, rest.letters.len());
    }
    Ok(report)
}

/// Sends each letter to its source queue, then deletes it from the dead-letter queue.
async fn move_back(
    sqs: &SqsClient,
    dlq: &DeadLetterQueue,
    letters: &[Letter],
) -> Result<usize, DlqError> {
    let fifo = dlq.source.url.ends_with(".fifo");
    for letter in letters {
        let mut send = sqs
            .send_message()
            .queue_url(&dlq.source.url)
            .message_body(&letter.body)
            .set_message_attributes(letter.attributes.clone());
        if fifo {
            // Back into the group it came from (its aggregate's), after what that group holds
            // now; a deduplication id of its own, so that SQS does not take it for the original
            // delivery still inside its five-minute window.
            let group = letter
                .group
                .clone()
                .unwrap_or_else(|| letter.message_id.clone());
            send = send
                .message_group_id(group)
                .message_deduplication_id(format!("redrive-{}", letter.message_id));
        }
        send.send()
            .await
            .map_err(sqs_error("SendMessage", &dlq.source.name))?;
        sqs.delete_message()
            .queue_url(&dlq.queue.url)
            .receipt_handle(&letter.receipt)
            .send()
            .await
            .map_err(sqs_error("DeleteMessage", &dlq.queue.name))?;
    }
    Ok(letters.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(body: &str) -> Letter {
        Letter {
            message_id: "m-1".into(),
            body: body.into(),
            reason: Reason::of(body),
            receive_count: Some(20),
            sent_at: None,
            receipt: "r".into(),
            attributes: None,
            group: None,
        }
    }

    fn redrive(event_type: Option<&str>, reason: Option<&str>, unreadable: bool) -> RedriveArgs {
        RedriveArgs {
            options: DlqOptions {
                stack: StackArgs {
                    stack: "s".into(),
                    template: "template.yaml".into(),
                },
                queue: None,
                limit: 10,
                json: false,
            },
            event_type: event_type.map(str::to_owned),
            reason: reason.map(str::to_owned),
            include_unreadable: unreadable,
            yes: true,
        }
    }

    fn placed_body() -> String {
        let placed = domain::testing::placed("o-1");
        domain::testing::stored::<domain::order::Order>(
            "o-1",
            1,
            &domain::order::OrderEvent::Placed(placed),
        )
        .to_json()
    }

    #[test]
    fn a_readable_event_is_told_by_its_type_stream_and_source() {
        let Reason::Event {
            event_type,
            stream,
            source,
        } = Reason::of(&placed_body())
        else {
            panic!("readable");
        };
        assert_eq!(event_type, "order.placed");
        assert_eq!(stream, "Order#o-1@1");
        assert_eq!(source, domain::sources::ORDERS_API);
    }

    #[test]
    fn poison_is_unreadable_with_the_parsers_own_words() {
        for body in ["{not json", "{}", r#"{"specversion":"1.0"}"#, ""] {
            let reason = Reason::of(body);
            assert!(matches!(reason, Reason::Unreadable { .. }), "{body:?}");
            assert!(reason.label().starts_with("unreadable: "));
        }
    }

    #[test]
    fn redrive_moves_readable_messages_and_leaves_poison_unless_told() {
        let (healthy, poison) = (letter(&placed_body()), letter("{not json"));
        let every_readable = redrive(None, None, false);
        assert!(healthy.selected_by(&every_readable));
        assert!(!poison.selected_by(&every_readable));
        assert!(poison.selected_by(&redrive(None, None, true)));
        assert!(healthy.selected_by(&redrive(Some("order.placed"), None, false)));
        assert!(!healthy.selected_by(&redrive(Some("order.cancelled"), None, false)));
        assert!(!poison.selected_by(&redrive(Some("order.placed"), None, true)));
        assert!(poison.selected_by(&redrive(None, Some("unreadable"), true)));
        assert!(!healthy.selected_by(&redrive(None, Some("unreadable"), true)));
    }
}
