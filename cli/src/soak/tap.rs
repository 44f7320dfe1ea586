//! Taps on the topics: a queue of the harness's own subscribed to a topic with no filter, drained
//! while the soak runs, so that what a topic delivered (every published event, every customer
//! message) is read from SNS itself rather than from anybody's bookkeeping.
//!
//! Draining as it goes keeps the tap queue short: the emulator scans a queue on every receive.

use std::sync::{Arc, Mutex};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, QueueAttributeName};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::SoakError;
use crate::provision::Clients;

/// Receivers per tap.
const DRAINERS: usize = 2;

/// A queue subscribed to a topic, being drained.
pub struct Tap {
    name: String,
    url: String,
    subscription: String,
    bodies: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
    drainers: Vec<JoinHandle<()>>,
}

impl Tap {
    /// Subscribes a new queue `name` to `topic_arn` and starts draining it; `raw` delivers the
    /// message itself rather than SNS's notification around it (which carries the attributes).
    pub async fn open(
        clients: &Clients,
        name: &str,
        topic_arn: &str,
        raw: bool,
    ) -> Result<Tap, SoakError> {
        let created = clients
            .sqs
            .create_queue()
            .queue_name(name)
            .send()
            .await
            .map_err(|e| SoakError::read(name, e))?;
        let url = created.queue_url().unwrap_or_default().to_owned();
        let arn = clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| SoakError::read(name, e))?
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        let mut subscribe = clients
            .sns
            .subscribe()
            .topic_arn(topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .return_subscription_arn(true);
        if raw {
            subscribe = subscribe.attributes("RawMessageDelivery", "true");
        }
        let subscription = subscribe
            .send()
            .await
            .map_err(|e| SoakError::read(topic_arn, e))?
            .subscription_arn()
            .unwrap_or_default()
            .to_owned();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let drainers = (0..DRAINERS)
            .map(|_| {
                tokio::spawn(drain(
                    clients.sqs.clone(),
                    url.clone(),
                    bodies.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        Ok(Tap {
            name: name.to_owned(),
            url,
            subscription,
            bodies,
            stop,
            drainers,
        })
    }

    /// Stops draining, takes what is left, unsubscribes and deletes the queue; every body the
    /// topic delivered, in the order received.
    pub async fn close(self, clients: &Clients) -> Vec<String> {
        self.stop.cancel();
        for drainer in self.drainers {
            let _ = drainer.await;
        }
        let mut empty = 0;
        while empty < 2 {
            if receive_once(&clients.sqs, &self.url, &self.bodies, 0).await == 0 {
                empty += 1;
            }
        }
        if let Err(err) = clients
            .sns
            .unsubscribe()
            .subscription_arn(&self.subscription)
            .send()
            .await
        {
            tracing::warn!(tap = %self.name, error = %ripple_kit::telemetry::error_chain(&err), "could not unsubscribe the tap");
        }
        if let Err(err) = clients.sqs.delete_queue().queue_url(&self.url).send().await {
            tracing::warn!(tap = %self.name, error = %ripple_kit::telemetry::error_chain(&err), "could not delete the tap's queue");
        }
        self.bodies.lock().map(|b| b.clone()).unwrap_or_default()
    }
}

async fn drain(
    sqs: aws_sdk_sqs::Client,
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
) {
    // A receive is never cut short: messages it took would stay invisible to the last drain.
    while !stop.is_cancelled() {
        receive_once(&sqs, &url, &bodies, 1).await;
    }
}

/// One receive and delete; how many messages it took.
async fn receive_once(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    bodies: &Mutex<Vec<String>>,
    wait_seconds: i32,
) -> usize {
    let received = match sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .wait_time_seconds(wait_seconds)
        .send()
        .await
    {
        Ok(received) => received.messages.unwrap_or_default(),
        Err(err) => {
            tracing::warn!(tap = %url, error = %ripple_kit::telemetry::error_chain(&err), "tap receive failed");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            return 0;
        }
    };
    if received.is_empty() {
        return 0;
    }
    let entries: Vec<_> = received
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .build()
                .ok()
        })
        .collect();
    if let Ok(mut kept) = bodies.lock() {
        kept.extend(received.iter().filter_map(|m| m.body.clone()));
    }
    if let Err(err) = sqs
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        tracing::warn!(tap = %url, error = %ripple_kit::telemetry::error_chain(&err), "tap delete failed; those messages will be counted again");
    }
    received.len()
}
