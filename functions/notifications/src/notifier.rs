//! The customer-message port: what a notification says, the SNS adapter, and a recording twin.
//!
//! The SNS adapter publishes to the notifications topic (an email subscription in the template;
//! SMS, a webhook or a queue for a mail service subscribe the same way). The recording twin keeps
//! what it was given, for tests and for the local runner.

use std::future::Future;
use std::sync::Mutex;

use aws_sdk_sns::Client;
use aws_sdk_sns::types::MessageAttributeValue;
use domain::order::{CancelReason, OrderEvent};
use serde::{Deserialize, Serialize};

/// One message to a customer about one order outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// The order.
    pub order_id: String,
    /// The outcome's event type: `order.confirmed` or `order.cancelled`.
    pub outcome: String,
    /// A one-line subject (SNS allows 100 characters, no line breaks).
    pub subject: String,
    /// The message.
    pub text: String,
}

/// What the channel answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The channel's id of the message (SNS's `MessageId`).
    pub message_id: String,
}

/// The channel failed; the message may be retried.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The channel did not take the message.
    #[error("notification channel failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Sends customer messages.
pub trait Notifier: Send + Sync {
    /// Sends `notification` once (the caller makes sure of "once").
    fn notify(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<Sent, NotifyError>> + Send;
}

/// The message for an order outcome; `None` for events that are not outcomes.
pub fn compose(event: &OrderEvent) -> Option<Notification> {
    // The outcome is the event's own type name, from its serde rename.
    let outcome = ripple_kit::envelope::event_type_of(event)?.to_owned();
    match event {
        OrderEvent::Placed(_) => None,
        OrderEvent::Confirmed { order_id } => Some(Notification {
            order_id: order_id.clone(),
            outcome,
            subject: format!("Your order {order_id} is confirmed"),
            text: format!(
                "Your order {order_id} is confirmed. Your payment went through and your items \
                 are set aside; we will let you know when they ship."
            ),
        }),
        OrderEvent::Cancelled { order_id, reason } => {
            let why = match reason {
                CancelReason::OutOfStock => {
                    "some of the items are out of stock. Nothing was charged."
                }
                CancelReason::PaymentDeclined => {
                    "your payment was declined. Nothing was charged; you can place the order \
                     again with another payment method."
                }
                CancelReason::CustomerRequest => {
                    "you asked us to. If you were charged, the full amount is being refunded."
                }
                CancelReason::TimedOut => {
                    "we could not complete it in time. If you were charged, the full amount is \
                     being refunded; you can place the order again."
                }
            };
            Some(Notification {
                order_id: order_id.clone(),
                outcome,
                subject: format!("Your order {order_id} was cancelled"),
                text: format!("Your order {order_id} was cancelled because {why}"),
            })
        }
    }
}

/// Publishes notifications to an SNS topic, with `type` and `order_id` as message attributes so
/// subscriptions can filter.
#[derive(Clone, Debug)]
pub struct SnsNotifier {
    client: Client,
    topic_arn: String,
}

impl SnsNotifier {
    /// A notifier publishing to `topic_arn`.
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        SnsNotifier {
            client,
            topic_arn: topic_arn.into(),
        }
    }
}

fn string_attribute(value: &str) -> Result<MessageAttributeValue, NotifyError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| NotifyError::Backend(Box::new(e)))
}

impl Notifier for SnsNotifier {
    async fn notify(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        let output = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .subject(&notification.subject)
            .message(&notification.text)
            .message_attributes("type", string_attribute(&notification.outcome)?)
            .message_attributes("order_id", string_attribute(&notification.order_id)?)
            .send()
            .await
            .map_err(|e| NotifyError::Backend(Box::new(e)))?;
        Ok(Sent {
            message_id: output.message_id().unwrap_or_default().to_owned(),
        })
    }
}

/// Keeps every notification it is given instead of sending it.
#[derive(Debug, Default)]
pub struct RecordingNotifier {
    sent: Mutex<Vec<Notification>>,
}

impl RecordingNotifier {
    /// A notifier that has sent nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<Notification> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Notifier for RecordingNotifier {
    async fn notify(&self, notification: &Notification) -> Result<Sent, NotifyError> {
        let mut sent = self
            .sent
            .lock()
            .map_err(|_| NotifyError::Backend("recording notifier poisoned".into()))?;
        sent.push(notification.clone());
        Ok(Sent {
            message_id: format!("recorded-{}", sent.len()),
        })
    }
}

/// A notifier shared between owners (a handler and a test) is the notifier.
impl<N: Notifier> Notifier for std::sync::Arc<N> {
    fn notify(
        &self,
        notification: &Notification,
    ) -> impl Future<Output = Result<Sent, NotifyError>> + Send {
        N::notify(self, notification)
    }
}
