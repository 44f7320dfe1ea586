//! Creates what a template declares, in whatever `AWS_ENDPOINT_URL` points at, and removes it.
//!
//! One stack name scopes every physical name, so tests provision side by side with unique names
//! and nothing depends on what an earlier run left behind. Creation waits the way CloudFormation
//! does (a table is ACTIVE and its stream ENABLED before anything uses it), dead-letter queues
//! come before the queues that redrive to them, and every ARN and queue URL is read back from the
//! service rather than assembled here.
//!
//! The steps live next to this module: tables in `dynamodb`, topics, queues and subscriptions in
//! `messaging`, what was created in `deployment`, finding a stack that exists (kept by `ripple
//! dev --keep`, made by `ripple up`, or deployed by CloudFormation, read in `cloudformation`) in
//! `lookup`, its removal in `teardown`, and the check that the endpoint answers at all in
//! `reachable`.

pub mod cloudformation;
mod deployment;
mod dynamodb;
mod lookup;
mod messaging;
mod reachable;
mod teardown;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::SdkConfig;

use crate::template::{
    self, DEFAULT_REGION, PseudoParameters, REF, Resolver, Stack, Template, TemplateError,
};

pub use deployment::{
    DeployedFunction, DeployedQueue, DeployedSubscription, DeployedTable, DeployedTopic,
    Deployment, LAMBDA_VARIABLES, Origin,
};
pub use lookup::{Find, find, lookup, lookup_deployed, lookup_with};
pub use reachable::check_reachable;
pub use teardown::{teardown, teardown_with};

/// How long creation may take before it is reported as stuck (real DynamoDB takes seconds).
pub(crate) const WAIT_LIMIT: Duration = Duration::from_secs(120);
pub(crate) const POLL: Duration = Duration::from_millis(250);

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why provisioning or teardown failed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    /// The template could not be resolved for this stack.
    #[error("template")]
    Template(#[from] TemplateError),
    /// An AWS call failed.
    #[error("{operation} {resource}")]
    Aws {
        /// The API operation.
        operation: &'static str,
        /// The physical name of the resource.
        resource: String,
        /// The SDK error.
        #[source]
        source: BoxError,
    },
    /// The service answered something the runner cannot use.
    #[error("{resource}: {message}")]
    Unexpected {
        /// The resource.
        resource: String,
        /// What was wrong.
        message: String,
    },
    /// A resource did not reach the state it needs within the wait limit.
    #[error("{resource} did not become {state} within {} s", WAIT_LIMIT.as_secs())]
    Timeout {
        /// The resource.
        resource: String,
        /// The state waited for.
        state: &'static str,
    },
    /// The endpoint does not answer.
    #[error("cannot reach {service} at {endpoint}")]
    Unreachable {
        /// The service that did not answer.
        service: &'static str,
        /// Where the SDK looked for it.
        endpoint: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// A resource of an existing stack is not there: the stack was never provisioned, or only
    /// in part, or from another template.
    #[error("stack {stack} has no {resource}")]
    NotProvisioned {
        /// The stack name.
        stack: String,
        /// What is missing (its type and physical name).
        resource: String,
    },
    /// CloudFormation has no such stack (in an account, nothing else is looked at).
    #[error("CloudFormation has no stack {stack} in {region}")]
    NotDeployed {
        /// The stack name.
        stack: String,
        /// The region looked in.
        region: String,
    },
    /// CloudFormation has the stack, but in a state where it does not hold its resources.
    #[error("stack {stack} is {status}: it {why}")]
    NotUsable {
        /// The stack name.
        stack: String,
        /// Its CloudFormation status.
        status: String,
        /// What that means.
        why: &'static str,
    },
    /// Some deletions failed (the first is the source; the rest were logged).
    #[error("teardown left {count} resource(s) behind")]
    Teardown {
        /// How many deletions failed.
        count: usize,
        /// The first failure.
        #[source]
        first: Box<ProvisionError>,
    },
}

pub(crate) fn aws_error<E>(
    operation: &'static str,
    resource: &str,
) -> impl FnOnce(E) -> ProvisionError
where
    E: std::error::Error + Send + Sync + 'static,
{
    let resource = resource.to_owned();
    move |source| ProvisionError::Aws {
        operation,
        resource,
        source: Box::new(source),
    }
}

pub(crate) fn unexpected(resource: &str, message: impl Into<String>) -> ProvisionError {
    ProvisionError::Unexpected {
        resource: resource.to_owned(),
        message: message.into(),
    }
}

/// The AWS clients the runner uses, built once from one SDK configuration.
#[derive(Debug, Clone)]
pub struct Clients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// DynamoDB Streams.
    pub streams: aws_sdk_dynamodbstreams::Client,
    /// SNS.
    pub sns: aws_sdk_sns::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// CloudFormation, to find a deployed stack's resources.
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// The configured region.
    pub region: String,
}

impl Clients {
    /// Clients for every service, honouring `AWS_ENDPOINT_URL` and its per-service variants.
    pub fn new(aws: &SdkConfig) -> Self {
        Clients {
            dynamodb: aws_sdk_dynamodb::Client::new(aws),
            streams: aws_sdk_dynamodbstreams::Client::new(aws),
            sns: aws_sdk_sns::Client::new(aws),
            sqs: aws_sdk_sqs::Client::new(aws),
            cloudformation: aws_sdk_cloudformation::Client::new(aws),
            region: aws
                .region()
                .map_or(DEFAULT_REGION.to_owned(), |r| r.as_ref().to_owned()),
        }
    }
}

/// Provisions `template` as stack `stack_name` with the clients of `aws`, with the parameter
/// overrides of the environment ([`PARAMETER_OVERRIDES`]).
pub async fn provision(
    aws: &SdkConfig,
    template: &Template,
    stack_name: &str,
) -> Result<Deployment, ProvisionError> {
    provision_with(
        &Clients::new(aws),
        local_resolver(template, pseudo(aws, stack_name))?,
    )
    .await
}

/// The environment variable with the parameter overrides of every stack ripple provisions, and
/// finds by its names, in the form `sam deploy --parameter-overrides` takes:
/// `Ordering=fifo PaymentDeclineRate=0.1`. Unset: the template's defaults.
pub const PARAMETER_OVERRIDES: &str = "RIPPLE_PARAMETER_OVERRIDES";

/// The overrides in [`PARAMETER_OVERRIDES`], `Name=Value` pairs apart by spaces.
pub fn parameter_overrides() -> Result<Vec<(String, String)>, ProvisionError> {
    let Ok(text) = std::env::var(PARAMETER_OVERRIDES) else {
        return Ok(Vec::new());
    };
    parse_overrides(&text).map_err(|message| {
        ProvisionError::Template(TemplateError::Invalid {
            at: PARAMETER_OVERRIDES.to_owned(),
            message,
        })
    })
}

/// `Name=Value` pairs apart by whitespace.
pub fn parse_overrides(text: &str) -> Result<Vec<(String, String)>, String> {
    text.split_whitespace()
        .map(|pair| {
            pair.split_once('=')
                .filter(|(name, _)| !name.is_empty())
                .map(|(name, value)| (name.to_owned(), value.to_owned()))
                .ok_or_else(|| format!("{pair:?} is not Name=Value"))
        })
        .collect()
}

/// A resolver of `template` for a stack of the runner: the parameters' defaults, with the
/// overrides of the environment.
pub fn local_resolver(
    template: &Template,
    pseudo: PseudoParameters,
) -> Result<Resolver<'_>, ProvisionError> {
    Ok(template.resolver_with(pseudo, &parameter_overrides()?)?)
}

/// The pseudo parameters of a local stack in the SDK's region.
pub fn pseudo(aws: &SdkConfig, stack_name: &str) -> PseudoParameters {
    let region = aws
        .region()
        .map_or(DEFAULT_REGION.to_owned(), |r| r.as_ref().to_owned());
    PseudoParameters::new(stack_name, region)
}

/// Provisions what `resolver` resolves (its stack name, region and parameters).
pub async fn provision_with(
    clients: &Clients,
    resolver: Resolver<'_>,
) -> Result<Deployment, ProvisionError> {
    provision_adjusted(clients, resolver, |_| {}).await
}

/// Provisions what `resolver` resolves after `adjust` changed it (`ripple soak` compresses its
/// timeouts); the deployment holds the adjusted stack.
pub async fn provision_adjusted(
    clients: &Clients,
    mut resolver: Resolver<'_>,
    adjust: impl FnOnce(&mut Stack),
) -> Result<Deployment, ProvisionError> {
    template::validate_stack_name(&resolver.pseudo().stack_name)?;
    let mut stack = resolver.stack()?;
    adjust(&mut stack);
    let pseudo = resolver.pseudo().clone();
    tracing::info!(stack = %pseudo.stack_name, "provisioning");
    let tables = create_tables(clients, &stack, &mut resolver).await?;
    let topics = create_topics(clients, &stack, &mut resolver).await?;
    let queues = create_queues(clients, &stack, &mut resolver).await?;
    let subscriptions = subscribe_queues(clients, &stack, &topics, &queues).await?;
    let functions = functions(&stack, &resolver)?;
    for ignored in &stack.ignored {
        tracing::debug!(logical_id = %ignored.logical_id, r#type = %ignored.resource_type, reason = %ignored.reason, "not emulated");
    }
    tracing::info!(
        stack = %pseudo.stack_name,
        tables = tables.len(),
        topics = topics.len(),
        queues = queues.len(),
        subscriptions = subscriptions.len(),
        "provisioned"
    );
    Ok(Deployment {
        stack_name: pseudo.stack_name,
        region: pseudo.region,
        origin: Origin::Ripple,
        stack,
        tables,
        topics,
        queues,
        subscriptions,
        functions,
    })
}

/// Every table at once; their names, ARNs and stream ARNs become known to `resolver`.
async fn create_tables(
    clients: &Clients,
    stack: &Stack,
    resolver: &mut Resolver<'_>,
) -> Result<BTreeMap<String, DeployedTable>, ProvisionError> {
    let tables = futures::future::try_join_all(
        stack
            .tables
            .iter()
            .map(|table| dynamodb::create_table(clients, table)),
    )
    .await?;
    for table in &tables {
        know_table(resolver, table);
    }
    Ok(by_logical_id(tables, |t| &t.logical_id))
}

/// Every topic at once; their ARNs become known to `resolver`.
async fn create_topics(
    clients: &Clients,
    stack: &Stack,
    resolver: &mut Resolver<'_>,
) -> Result<BTreeMap<String, DeployedTopic>, ProvisionError> {
    let topics = futures::future::try_join_all(
        stack
            .topics
            .iter()
            .map(|topic| messaging::create_topic(clients, topic)),
    )
    .await?;
    for topic in &topics {
        know_topic(resolver, topic);
    }
    Ok(by_logical_id(topics, |t| &t.logical_id))
}

/// The queues, each dead-letter queue before the queues that redrive to it; their URLs and ARNs
/// become known to `resolver`.
async fn create_queues(
    clients: &Clients,
    stack: &Stack,
    resolver: &mut Resolver<'_>,
) -> Result<BTreeMap<String, DeployedQueue>, ProvisionError> {
    let mut queues: BTreeMap<String, DeployedQueue> = BTreeMap::new();
    for queue in stack.queues_dlq_first() {
        let dlq_arn = match &queue.redrive {
            Some(redrive) => Some(
                queues
                    .get(&redrive.dead_letter_queue)
                    .map(|q| q.arn.clone())
                    .ok_or_else(|| {
                        unexpected(&queue.name, "its dead-letter queue was not created")
                    })?,
            ),
            None => None,
        };
        let created = messaging::create_queue(
            clients,
            queue,
            dlq_arn.as_deref(),
            stack.is_dead_letter_queue(&queue.logical_id),
        )
        .await?;
        know_queue(resolver, &created);
        queues.insert(queue.logical_id.clone(), created);
    }
    Ok(queues)
}

async fn subscribe_queues(
    clients: &Clients,
    stack: &Stack,
    topics: &BTreeMap<String, DeployedTopic>,
    queues: &BTreeMap<String, DeployedQueue>,
) -> Result<BTreeMap<String, DeployedSubscription>, ProvisionError> {
    let mut subscriptions = BTreeMap::new();
    for subscription in &stack.subscriptions {
        let (Some(topic), Some(queue)) = (
            topics.get(&subscription.topic),
            queues.get(&subscription.queue),
        ) else {
            return Err(unexpected(
                &subscription.logical_id,
                "its topic or queue was not created",
            ));
        };
        let dlq_arn = match &subscription.dead_letter_queue {
            None => None,
            Some(dlq) => Some(
                queues
                    .get(dlq)
                    .map(|q| q.arn.as_str())
                    .ok_or_else(|| unexpected(dlq, "this subscription DLQ was not created"))?,
            ),
        };
        let arn =
            messaging::subscribe(clients, subscription, &topic.arn, &queue.arn, dlq_arn).await?;
        subscriptions.insert(
            subscription.logical_id.clone(),
            DeployedSubscription {
                logical_id: subscription.logical_id.clone(),
                arn,
            },
        );
    }
    Ok(subscriptions)
}

/// Records what `!Ref` and `!GetAtt` of a table return, as DynamoDB reported it.
fn know_table(resolver: &mut Resolver<'_>, table: &DeployedTable) {
    resolver.know(&table.logical_id, REF, &table.name);
    resolver.know(&table.logical_id, "Arn", &table.arn);
    if let Some(stream) = &table.stream_arn {
        resolver.know(&table.logical_id, "StreamArn", stream);
    }
}

/// Records what `!Ref` and `!GetAtt` of a topic return, as SNS reported it.
fn know_topic(resolver: &mut Resolver<'_>, topic: &DeployedTopic) {
    resolver.know(&topic.logical_id, REF, &topic.arn);
    resolver.know(&topic.logical_id, "TopicArn", &topic.arn);
    resolver.know(&topic.logical_id, "TopicName", &topic.name);
}

/// Records what `!Ref` and `!GetAtt` of a queue return, as SQS reported it.
fn know_queue(resolver: &mut Resolver<'_>, queue: &DeployedQueue) {
    resolver.know(&queue.logical_id, REF, &queue.url);
    resolver.know(&queue.logical_id, "QueueUrl", &queue.url);
    resolver.know(&queue.logical_id, "Arn", &queue.arn);
    resolver.know(&queue.logical_id, "QueueName", &queue.name);
}

/// Every function with its environment resolved against what was created.
fn functions(
    stack: &Stack,
    resolver: &Resolver<'_>,
) -> Result<BTreeMap<String, DeployedFunction>, ProvisionError> {
    let region = &resolver.pseudo().region;
    let mut functions = BTreeMap::new();
    for function in &stack.functions {
        let mut environment = resolver.environment(function)?;
        // In the order of LAMBDA_VARIABLES.
        let lambda_values = [
            region.clone(),
            region.clone(),
            function.name.clone(),
            function.memory_size.to_string(),
            "$LATEST".to_owned(),
            format!("/aws/lambda/{}", function.name),
        ];
        for (key, value) in LAMBDA_VARIABLES.iter().zip(lambda_values) {
            environment.insert((*key).to_owned(), value);
        }
        functions.insert(
            function.logical_id.clone(),
            DeployedFunction {
                logical_id: function.logical_id.clone(),
                name: function.name.clone(),
                arn: resolver.attribute(&function.logical_id, "Arn")?,
                binary: function.binary.clone(),
                timeout: function.timeout,
                environment,
                events: function.events.clone(),
            },
        );
    }
    Ok(functions)
}

fn by_logical_id<T>(items: Vec<T>, id: impl Fn(&T) -> &String) -> BTreeMap<String, T> {
    items
        .into_iter()
        .map(|item| (id(&item).clone(), item))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_are_name_value_pairs_apart_by_spaces_as_sam_takes_them() {
        assert_eq!(
            parse_overrides(" Ordering=fifo  PaymentDeclineRate=0.1\n"),
            Ok(vec![
                ("Ordering".to_owned(), "fifo".to_owned()),
                ("PaymentDeclineRate".to_owned(), "0.1".to_owned())
            ])
        );
        assert_eq!(parse_overrides(""), Ok(Vec::new()));
        assert_eq!(
            parse_overrides("NotificationEmail="),
            Ok(vec![("NotificationEmail".to_owned(), String::new())])
        );
        let bad = parse_overrides("Ordering fifo").unwrap_err();
        assert!(bad.contains("\"Ordering\" is not Name=Value"), "{bad}");
        assert!(parse_overrides("=fifo").is_err());
    }
}
