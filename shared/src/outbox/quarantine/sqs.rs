//! The quarantine in an SQS queue (feature `quarantine-sqs`): one message per record, its body
//! the [`Quarantined`] record as JSON. An alarm on the queue's first message tells an operator.

use aws_sdk_sqs::Client;

use super::{Quarantine, QuarantineError, Quarantined};

/// The quarantine in the SQS queue at `queue_url` (the function needs `sqs:SendMessage` on it).
#[derive(Debug, Clone)]
pub struct SqsQuarantine {
    client: Client,
    queue_url: String,
}

impl SqsQuarantine {
    /// The quarantine in the queue at `queue_url`.
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        SqsQuarantine {
            client,
            queue_url: queue_url.into(),
        }
    }
}

impl Quarantine for SqsQuarantine {
    async fn isolate(&self, record: &Quarantined) -> Result<(), QuarantineError> {
        let body = serde_json::json!({ "quarantined": record }).to_string();
        self.client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|err| QuarantineError::Backend(Box::new(err)))
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_sqs::operation::send_message::SendMessageOutput;
    use aws_smithy_mocks::{mock, mock_client};

    use super::*;

    #[tokio::test]
    async fn a_quarantined_record_is_one_message_naming_the_event_and_why() {
        let send = mock!(Client::send_message)
            .match_requests(|req| {
                let body: serde_json::Value =
                    serde_json::from_str(req.message_body().unwrap_or_default()).unwrap();
                req.queue_url() == Some("https://q")
                    && body["quarantined"]["stream"] == "Order#o-1"
                    && body["quarantined"]["sequence"] == 2
                    && body["quarantined"]["code"] == "TooLarge"
            })
            .then_output(|| SendMessageOutput::builder().build());
        let client = mock_client!(aws_sdk_sqs, [&send]);
        let quarantine = SqsQuarantine::new(client, "https://q");
        let record = Quarantined {
            stream: Some("Order#o-1".into()),
            sequence: Some(2),
            event_id: Some("e-1".into()),
            event_type: Some("order.placed".into()),
            code: "TooLarge".into(),
            reason: "300000 bytes".into(),
            stream_sequence_number: Some("100".into()),
        };
        quarantine.isolate(&record).await.unwrap();
        assert_eq!(send.num_calls(), 1);
    }
}
