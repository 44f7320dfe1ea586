//! `outbox-publisher`: the events table's stream, published to the domain-events topic.
//!
//! The stream is the outbox: producers only append to the store, and this function is the one
//! place that publishes. It is the kit's [`Outbox`] over the SNS publisher: records are published
//! in stream order with `PublishBatch`, and the first record that cannot be published is the
//! batch item failure, so Lambda retries the shard from exactly there. Only the store's own events
//! leave: an item not at its envelope's stream position, or whose source may not write it by
//! [`domain::producers`], is quarantined (logged, counted, alarmed) and never published.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use ripple_kit::outbox::Outbox;
use ripple_kit::publish::{Publisher, SnsPublisher};

ripple_kit::settings! {
    /// Settings, from the variables template.yaml gives this function.
    pub struct Config {
        /// The domain-events topic.
        topic_arn: "TOPIC_ARN",
    }
}

/// The outbox-publisher function: the kit's outbox over a publisher.
pub type Handler<P = SnsPublisher> = Outbox<P>;

/// The handler publishing to the topic named in `config`.
pub fn handler(config: Config, aws: &aws_config::SdkConfig) -> Handler {
    handler_with(SnsPublisher::new(
        aws_sdk_sns::Client::new(aws),
        config.topic_arn,
    ))
}

/// The outbox over any publisher (tests pass a recording one), admitting only what the system's
/// producers may write.
pub fn handler_with<P: Publisher>(publisher: P) -> Handler<P> {
    Outbox::new(publisher).with_producers(domain::producers())
}

#[cfg(test)]
mod tests;
