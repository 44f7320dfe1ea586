//! Teardown: everything a deployment created is deleted, and what is already gone is no error.

use aws_config::SdkConfig;

use super::{Clients, Deployment, ProvisionError, aws_error};

/// Deletes everything `deployment` created (subscriptions, topics, queues, tables), including
/// tables the template retains on stack deletion: a local stack leaves nothing behind. What is
/// already gone is not an error.
pub async fn teardown(aws: &SdkConfig, deployment: &Deployment) -> Result<(), ProvisionError> {
    teardown_with(&Clients::new(aws), deployment).await
}

/// [`teardown`] with existing clients.
pub async fn teardown_with(
    clients: &Clients,
    deployment: &Deployment,
) -> Result<(), ProvisionError> {
    let mut failures = Vec::new();
    for subscription in deployment.subscriptions.values() {
        let deleted = clients
            .sns
            .unsubscribe()
            .subscription_arn(&subscription.arn)
            .send()
            .await;
        if let Err(e) = deleted
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_not_found_exception())
        {
            failures.push(aws_error("Unsubscribe", &subscription.arn)(e));
        }
    }
    for topic in deployment.topics.values() {
        let deleted = clients
            .sns
            .delete_topic()
            .topic_arn(&topic.arn)
            .send()
            .await;
        if let Err(e) = deleted
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_not_found_exception())
        {
            failures.push(aws_error("DeleteTopic", &topic.name)(e));
        }
    }
    for queue in deployment.queues.values() {
        let deleted = clients
            .sqs
            .delete_queue()
            .queue_url(&queue.url)
            .send()
            .await;
        if let Err(e) = deleted
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_queue_does_not_exist())
        {
            failures.push(aws_error("DeleteQueue", &queue.name)(e));
        }
    }
    for table in deployment.tables.values() {
        let deleted = clients
            .dynamodb
            .delete_table()
            .table_name(&table.name)
            .send()
            .await;
        if let Err(e) = deleted
            && !e
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception())
        {
            failures.push(aws_error("DeleteTable", &table.name)(e));
        }
    }
    outcome(&deployment.stack_name, failures)
}

/// The first failure, the others logged; `Ok` when every deletion went through.
fn outcome(stack: &str, failures: Vec<ProvisionError>) -> Result<(), ProvisionError> {
    for failure in failures.iter().skip(1) {
        tracing::warn!(error = %ripple_kit::telemetry::error_chain(failure), "teardown");
    }
    let count = failures.len();
    match failures.into_iter().next() {
        None => {
            tracing::info!(stack, "torn down");
            Ok(())
        }
        Some(first) => Err(ProvisionError::Teardown {
            count,
            first: Box::new(first),
        }),
    }
}
