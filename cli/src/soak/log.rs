//! The log, read back: why each message a consumer failed was refused, as the consumer logged it.
//!
//! The kit's batch processor runs every SQS record in a `record` span carrying its message id and
//! logs its failure at ERROR with the reason in `error`. [`ReasonLog`] is a tracing layer that keeps
//! the last such reason per message id, so the soak can check that every message in a DLQ had
//! its reason logged: the message id survives the move to the DLQ.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

/// The span the kit runs each SQS record in.
const RECORD_SPAN: &str = "record";

/// The last logged failure reason of each message, by message id.
#[derive(Debug, Clone, Default)]
pub struct ReasonLog {
    reasons: Arc<Mutex<HashMap<String, String>>>,
}

impl ReasonLog {
    /// The reason logged for `message_id`, if any.
    pub fn reason(&self, message_id: &str) -> Option<String> {
        self.reasons.lock().ok()?.get(message_id).cloned()
    }

    /// How many messages have a reason logged.
    pub fn len(&self) -> usize {
        self.reasons.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// True when nothing failed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Which spans and events the layer needs to see: the kit's.
    pub fn wants(metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("ripple_kit")
    }

    fn remember(&self, message_id: String, reason: String) {
        if let Ok(mut reasons) = self.reasons.lock() {
            reasons.insert(message_id, reason);
        }
    }
}

/// The message id of a `record` span.
struct MessageId(String);

/// Reads one named field as text.
struct FieldText {
    name: &'static str,
    value: Option<String>,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == self.name {
            self.value = Some(value.to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == self.name {
            self.value = Some(format!("{value:?}"));
        }
    }
}

fn field(name: &'static str, record: impl FnOnce(&mut FieldText)) -> Option<String> {
    let mut visitor = FieldText { name, value: None };
    record(&mut visitor);
    visitor.value
}

impl<S> Layer<S> for ReasonLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != RECORD_SPAN {
            return;
        }
        if let (Some(message_id), Some(span)) =
            (field("message_id", |v| attrs.record(v)), ctx.span(id))
        {
            span.extensions_mut().insert(MessageId(message_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let Some(reason) = field("error", |v| event.record(v)) else {
            return;
        };
        let Some(scope) = ctx.event_scope(event) else {
            return;
        };
        for span in scope {
            if let Some(MessageId(id)) = span.extensions().get::<MessageId>() {
                self.remember(id.clone(), reason);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn the_reason_of_a_failed_record_is_kept_by_its_message_id() {
        let log = ReasonLog::default();
        let subscriber = tracing_subscriber::registry().with(log.clone());
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!("record", message_id = %"m-1", receive_count = %"1");
            span.in_scope(|| {
                tracing::info!("not a failure");
                tracing::error!(error = %"record has no body", "record failed; it will be redelivered");
            });
            let other = tracing::info_span!("record", message_id = %"m-2");
            other.in_scope(|| tracing::warn!(error = %"only a warning", "retrying"));
            tracing::error!(error = %"outside any record", "failed");
        });
        assert_eq!(log.reason("m-1").as_deref(), Some("record has no body"));
        assert_eq!(log.reason("m-2"), None);
        assert_eq!(log.len(), 1);
    }
}
