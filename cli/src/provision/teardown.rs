//! Teardown: everything a deployment created is deleted, and what is already gone is no error.

use aws_config::SdkConfig;
use aws_sdk_dynamodb::error::SdkError;

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
    let mut failures = Failures::default();
    for subscription in deployment.subscriptions.values() {
        let deleted = clients
            .sns
            .unsubscribe()
            .subscription_arn(&subscription.arn)
            .send()
            .await;
        failures.unless_gone(
            deleted,
            |e| e.is_not_found_exception(),
            "Unsubscribe",
            &subscription.arn,
        );
    }
    for topic in deployment.topics.values() {
        let deleted = clients
            .sns
            .delete_topic()
            .topic_arn(&topic.arn)
            .send()
            .await;
        failures.unless_gone(
            deleted,
            |e| e.is_not_found_exception(),
            "DeleteTopic",
            &topic.name,
        );
    }
    for queue in deployment.queues.values() {
        let deleted = clients
            .sqs
            .delete_queue()
            .queue_url(&queue.url)
            .send()
            .await;
        failures.unless_gone(
            deleted,
            |e| e.is_queue_does_not_exist(),
            "DeleteQueue",
            &queue.name,
        );
    }
    for table in deployment.tables.values() {
        let deleted = clients
            .dynamodb
            .delete_table()
            .table_name(&table.name)
            .send()
            .await;
        let gone = |e: &aws_sdk_dynamodb::operation::delete_table::DeleteTableError| {
            e.is_resource_not_found_exception()
        };
        failures.unless_gone(deleted, gone, "DeleteTable", &table.name);
    }
    failures.outcome(&deployment.stack_name)
}

/// The deletions that failed.
#[derive(Default)]
struct Failures(Vec<ProvisionError>);

impl Failures {
    /// Records a failed deletion, unless it failed because the resource is already gone.
    fn unless_gone<T, E, R>(
        &mut self,
        deleted: Result<T, SdkError<E, R>>,
        gone: impl Fn(&E) -> bool,
        operation: &'static str,
        resource: &str,
    ) where
        E: std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        if let Err(err) = deleted
            && !err.as_service_error().is_some_and(&gone)
        {
            self.0.push(aws_error(operation, resource)(err));
        }
    }

    /// The first failure, the others logged; `Ok` when every deletion went through.
    fn outcome(self, stack: &str) -> Result<(), ProvisionError> {
        for failure in self.0.iter().skip(1) {
            tracing::warn!(error = %ripple_kit::telemetry::error_chain(failure), "teardown");
        }
        let count = self.0.len();
        match self.0.into_iter().next() {
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
}
