//! Whether the services answer at all, before anything is created.

use std::future::Future;
use std::time::Duration;

use super::{BoxError, Clients, ProvisionError};

/// How long each service has to answer.
const LIMIT: Duration = Duration::from_secs(10);

/// Checks that every service the runner uses answers, with a short timeout per service.
pub async fn check_reachable(clients: &Clients) -> Result<(), ProvisionError> {
    answers(
        "DynamoDB",
        "AWS_ENDPOINT_URL_DYNAMODB",
        clients.dynamodb.list_tables().limit(1).send(),
    )
    .await?;
    answers(
        "DynamoDB Streams",
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
        clients.streams.list_streams().limit(1).send(),
    )
    .await?;
    answers(
        "SNS",
        "AWS_ENDPOINT_URL_SNS",
        clients.sns.list_topics().send(),
    )
    .await?;
    answers(
        "SQS",
        "AWS_ENDPOINT_URL_SQS",
        clients.sqs.list_queues().max_results(1).send(),
    )
    .await
}

/// `call` answered within [`LIMIT`]; otherwise `service` is unreachable at the endpoint that
/// `endpoint_var` (or `AWS_ENDPOINT_URL`) names.
async fn answers<T, E>(
    service: &'static str,
    endpoint_var: &str,
    call: impl Future<Output = Result<T, E>>,
) -> Result<(), ProvisionError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let source: BoxError = match tokio::time::timeout(LIMIT, call).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => Box::new(e),
        Err(_) => format!("no answer within {} s", LIMIT.as_secs()).into(),
    };
    let endpoint = std::env::var(endpoint_var)
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| "the default AWS endpoint (AWS_ENDPOINT_URL is not set)".into());
    Err(ProvisionError::Unreachable {
        service,
        endpoint,
        source,
    })
}
