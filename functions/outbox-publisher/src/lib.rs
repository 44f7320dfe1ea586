//! `outbox-publisher`: the events table's stream, published to the domain-events topic.
//!
//! The stream is the outbox: producers only append to the store, and this function is the one
//! place that publishes. It is the kit's [`Outbox`] over the SNS publisher, with its quarantine
//! in an SQS queue: records are published in stream order with `PublishBatch`; the first record
//! that fails for a reason that can pass is the batch item failure, so Lambda retries the shard
//! from exactly there (for as long as it takes); a record that can never be published is
//! quarantined alone, with its key and reason, and the shard goes on. Only the store's own events
//! leave: an item not at its envelope's stream position, or whose source may not write it by
//! [`domain::producers`], is quarantined as `Refused` (logged, counted, alarmed), never published.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use ripple_kit::outbox::Outbox;
use ripple_kit::outbox::quarantine::{Quarantine, SqsQuarantine};
use ripple_kit::publish::{Publisher, SnsPublisher};

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The domain-events topic.
        topic_arn: "TOPIC_ARN",
        /// The queue records that can never be published are quarantined in.
        quarantine_queue_url: "QUARANTINE_QUEUE_URL",
    }
}

/// The outbox-publisher function: the kit's outbox over a publisher and a quarantine.
pub type Handler<P = SnsPublisher, Q = SqsQuarantine> = Outbox<P, Q>;

/// The handler publishing to the topic, and quarantining in the queue, named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    handler_with(
        SnsPublisher::new(ripple_kit::requests::sns_client(aws), config.topic_arn),
        SqsQuarantine::new(
            ripple_kit::requests::sqs_client(aws),
            config.quarantine_queue_url,
        ),
    )
}

/// The outbox over any publisher and quarantine (tests pass recording ones), admitting only what
/// the system's producers may write.
pub fn handler_with<P: Publisher, Q: Quarantine>(publisher: P, quarantine: Q) -> Handler<P, Q> {
    Outbox::new(publisher)
        .with_producers(domain::producers())
        .with_quarantine(quarantine)
}

#[cfg(test)]
mod tests;
