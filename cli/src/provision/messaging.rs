//! Topics, queues and the subscriptions between them: CreateTopic, CreateQueue (dead-letter
//! queues first, redrive policies with the ARN SQS reports) and Subscribe (with the
//! subscription's own dead-letter queue, when it has one).

use std::collections::HashMap;

use aws_sdk_sqs::types::QueueAttributeName;

use super::{Clients, DeployedQueue, DeployedTopic, ProvisionError, aws_error, unexpected};
use crate::template;

pub(super) async fn create_topic(
    clients: &Clients,
    topic: &template::Topic,
) -> Result<DeployedTopic, ProvisionError> {
    let mut request = clients.sns.create_topic().name(&topic.name);
    if topic.fifo {
        request = request.attributes("FifoTopic", "true");
    }
    if topic.content_based_deduplication {
        request = request.attributes("ContentBasedDeduplication", "true");
    }
    // CreateTopic is idempotent: an existing topic's ARN comes back.
    let created = request
        .send()
        .await
        .map_err(aws_error("CreateTopic", &topic.name))?;
    let arn = created
        .topic_arn()
        .ok_or_else(|| unexpected(&topic.name, "CreateTopic returned no TopicArn"))?
        .to_owned();
    Ok(DeployedTopic {
        logical_id: topic.logical_id.clone(),
        name: topic.name.clone(),
        arn,
    })
}

/// The attributes CreateQueue gets for a queue of the template.
fn queue_attributes(
    queue: &template::Queue,
    dlq_arn: Option<&str>,
) -> HashMap<QueueAttributeName, String> {
    let mut attributes = HashMap::new();
    let numbers = [
        (
            QueueAttributeName::VisibilityTimeout,
            queue.visibility_timeout,
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            queue.message_retention_period,
        ),
        (QueueAttributeName::DelaySeconds, queue.delay_seconds),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            attributes.insert(name, value.to_string());
        }
    }
    if queue.fifo {
        attributes.insert(QueueAttributeName::FifoQueue, "true".into());
    }
    if queue.content_based_deduplication {
        attributes.insert(QueueAttributeName::ContentBasedDeduplication, "true".into());
    }
    if let (Some(redrive), Some(arn)) = (&queue.redrive, dlq_arn) {
        attributes.insert(
            QueueAttributeName::RedrivePolicy,
            serde_json::json!({
                "deadLetterTargetArn": arn,
                "maxReceiveCount": redrive.max_receive_count,
            })
            .to_string(),
        );
    }
    attributes
}

pub(super) async fn create_queue(
    clients: &Clients,
    queue: &template::Queue,
    dlq_arn: Option<&str>,
    dead_letter: bool,
) -> Result<DeployedQueue, ProvisionError> {
    let name = &queue.name;
    let created = clients
        .sqs
        .create_queue()
        .queue_name(name)
        .set_attributes(Some(queue_attributes(queue, dlq_arn)))
        .send()
        .await
        .map_err(aws_error("CreateQueue", name))?;
    let url = created
        .queue_url()
        .ok_or_else(|| unexpected(name, "CreateQueue returned no QueueUrl"))?
        .to_owned();
    Ok(DeployedQueue {
        logical_id: queue.logical_id.clone(),
        name: name.clone(),
        arn: queue_arn(clients, name, &url).await?,
        url,
        dead_letter,
    })
}

/// The ARN SQS reports for the queue at `url`.
pub(super) async fn queue_arn(
    clients: &Clients,
    name: &str,
    url: &str,
) -> Result<String, ProvisionError> {
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws_error("GetQueueAttributes", name))?;
    attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| unexpected(name, "GetQueueAttributes returned no QueueArn"))
}

pub(super) async fn subscribe(
    clients: &Clients,
    subscription: &template::Subscription,
    topic_arn: &str,
    queue_arn: &str,
    dlq_arn: Option<&str>,
) -> Result<String, ProvisionError> {
    let mut request = clients
        .sns
        .subscribe()
        .topic_arn(topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .return_subscription_arn(true);
    if subscription.raw_message_delivery {
        request = request.attributes("RawMessageDelivery", "true");
    }
    if let Some(policy) = &subscription.filter_policy {
        request = request.attributes("FilterPolicy", policy.to_string());
    }
    if let Some(scope) = &subscription.filter_policy_scope {
        request = request.attributes("FilterPolicyScope", scope);
    }
    if let Some(arn) = dlq_arn {
        let policy = serde_json::json!({ "deadLetterTargetArn": arn });
        request = request.attributes("RedrivePolicy", policy.to_string());
    }
    let created = request
        .send()
        .await
        .map_err(aws_error("Subscribe", &subscription.logical_id))?;
    created
        .subscription_arn()
        .map(str::to_owned)
        .ok_or_else(|| {
            unexpected(
                &subscription.logical_id,
                "Subscribe returned no SubscriptionArn",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_attributes_carry_the_redrive_policy_with_the_real_dlq_arn() {
        let queue = template::Queue {
            logical_id: "Work".into(),
            name: "s-work".into(),
            fifo: false,
            content_based_deduplication: false,
            visibility_timeout: Some(60),
            message_retention_period: None,
            delay_seconds: None,
            redrive: Some(template::Redrive {
                dead_letter_queue: "Dlq".into(),
                max_receive_count: 5,
            }),
        };
        let attributes = queue_attributes(&queue, Some("arn:aws:sqs:us-east-1:123456789012:s-dlq"));
        assert_eq!(attributes[&QueueAttributeName::VisibilityTimeout], "60");
        let policy: serde_json::Value =
            serde_json::from_str(&attributes[&QueueAttributeName::RedrivePolicy]).unwrap();
        assert_eq!(
            policy,
            serde_json::json!({"deadLetterTargetArn": "arn:aws:sqs:us-east-1:123456789012:s-dlq", "maxReceiveCount": 5})
        );
        assert!(!attributes.contains_key(&QueueAttributeName::FifoQueue));
    }
}
