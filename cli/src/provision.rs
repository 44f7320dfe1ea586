//! Creates what a template declares, in whatever `AWS_ENDPOINT_URL` points at, and removes it.
//!
//! One stack name scopes every physical name, so tests provision side by side with unique names
//! and nothing depends on what an earlier run left behind. Creation waits the way CloudFormation
//! does (a table is ACTIVE and its stream ENABLED before anything uses it), dead-letter queues
//! come before the queues that redrive to them, and every ARN and queue URL is read back from the
//! service rather than assembled here.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus,
    TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use serde::Serialize;

use crate::template::{
    self, DEFAULT_REGION, EventSource, PseudoParameters, REF, Resolver, Stack, Template,
    TemplateError,
};

/// How long creation may take before it is reported as stuck (real DynamoDB takes seconds).
const WAIT_LIMIT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(250);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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

fn aws_error<E>(operation: &'static str, resource: &str) -> impl FnOnce(E) -> ProvisionError
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

fn unexpected(resource: &str, message: impl Into<String>) -> ProvisionError {
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
            region: aws
                .region()
                .map_or(DEFAULT_REGION.to_owned(), |r| r.as_ref().to_owned()),
        }
    }
}

/// What was created for one stack: physical names, ARNs, queue URLs and each function's
/// resolved environment.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// The stack name.
    pub stack_name: String,
    /// The region.
    pub region: String,
    /// What the template declares for this stack.
    pub stack: Stack,
    /// Tables by logical id.
    pub tables: BTreeMap<String, DeployedTable>,
    /// Topics by logical id.
    pub topics: BTreeMap<String, DeployedTopic>,
    /// Queues by logical id.
    pub queues: BTreeMap<String, DeployedQueue>,
    /// Subscriptions by logical id.
    pub subscriptions: BTreeMap<String, DeployedSubscription>,
    /// Functions by logical id.
    pub functions: BTreeMap<String, DeployedFunction>,
}

/// A created table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedTable {
    /// Logical id.
    pub logical_id: String,
    /// Table name.
    pub name: String,
    /// Table ARN, as DynamoDB reports it.
    pub arn: String,
    /// Stream ARN, when the table has a stream.
    pub stream_arn: Option<String>,
}

/// A created topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedTopic {
    /// Logical id.
    pub logical_id: String,
    /// Topic name.
    pub name: String,
    /// Topic ARN, as SNS returned it.
    pub arn: String,
}

/// A created queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedQueue {
    /// Logical id.
    pub logical_id: String,
    /// Queue name.
    pub name: String,
    /// Queue URL, as SQS returned it.
    pub url: String,
    /// Queue ARN, as SQS reports it.
    pub arn: String,
    /// Whether another queue redrives to this one.
    pub dead_letter: bool,
}

/// A created subscription.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployedSubscription {
    /// Logical id.
    pub logical_id: String,
    /// Subscription ARN.
    pub arn: String,
}

/// A function ready to run locally: no Lambda is created, the runner invokes it in-process.
#[derive(Debug, Clone, Serialize)]
pub struct DeployedFunction {
    /// Logical id.
    pub logical_id: String,
    /// Function name.
    pub name: String,
    /// The ARN it would have (the invoked function ARN in its context).
    pub arn: String,
    /// Its cargo binary.
    pub binary: String,
    /// Its timeout.
    pub timeout: Duration,
    /// The resolved environment: the template's variables plus what Lambda sets itself.
    pub environment: BTreeMap<String, String>,
    /// Its event sources.
    pub events: Vec<EventSource>,
}

impl Deployment {
    /// A table by logical id.
    pub fn table(&self, logical_id: &str) -> Option<&DeployedTable> {
        self.tables.get(logical_id)
    }

    /// A topic by logical id.
    pub fn topic(&self, logical_id: &str) -> Option<&DeployedTopic> {
        self.topics.get(logical_id)
    }

    /// A queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&DeployedQueue> {
        self.queues.get(logical_id)
    }

    /// A function by logical id.
    pub fn function(&self, logical_id: &str) -> Option<&DeployedFunction> {
        self.functions.get(logical_id)
    }

    /// The function built from `binary`.
    pub fn function_by_binary(&self, binary: &str) -> Option<&DeployedFunction> {
        self.functions.values().find(|f| f.binary == binary)
    }

    /// The dead-letter queue of a queue.
    pub fn dead_letter_queue_of(&self, logical_id: &str) -> Option<&DeployedQueue> {
        let redrive = self.stack.queue(logical_id)?.redrive.as_ref()?;
        self.queues.get(&redrive.dead_letter_queue)
    }
}

/// Provisions `template` as stack `stack_name` with the clients of `aws`.
pub async fn provision(
    aws: &SdkConfig,
    template: &Template,
    stack_name: &str,
) -> Result<Deployment, ProvisionError> {
    provision_with(
        &Clients::new(aws),
        template.resolver(pseudo(aws, stack_name)),
    )
    .await
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
    mut resolver: Resolver<'_>,
) -> Result<Deployment, ProvisionError> {
    template::validate_stack_name(&resolver.pseudo().stack_name)?;
    let stack = resolver.stack()?;
    let pseudo = resolver.pseudo().clone();
    tracing::info!(stack = %pseudo.stack_name, "provisioning");

    let tables = futures::future::try_join_all(
        stack
            .tables
            .iter()
            .map(|table| create_table(clients, table)),
    )
    .await?;
    for table in &tables {
        resolver.know(&table.logical_id, REF, &table.name);
        resolver.know(&table.logical_id, "Arn", &table.arn);
        if let Some(stream) = &table.stream_arn {
            resolver.know(&table.logical_id, "StreamArn", stream);
        }
    }

    let topics = futures::future::try_join_all(
        stack
            .topics
            .iter()
            .map(|topic| create_topic(clients, topic)),
    )
    .await?;
    for topic in &topics {
        resolver.know(&topic.logical_id, REF, &topic.arn);
        resolver.know(&topic.logical_id, "TopicArn", &topic.arn);
        resolver.know(&topic.logical_id, "TopicName", &topic.name);
    }

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
        let created = create_queue(
            clients,
            queue,
            dlq_arn.as_deref(),
            stack.is_dead_letter_queue(&queue.logical_id),
        )
        .await?;
        resolver.know(&queue.logical_id, REF, &created.url);
        resolver.know(&queue.logical_id, "QueueUrl", &created.url);
        resolver.know(&queue.logical_id, "Arn", &created.arn);
        resolver.know(&queue.logical_id, "QueueName", &created.name);
        queues.insert(queue.logical_id.clone(), created);
    }
    let topics: BTreeMap<_, _> = topics
        .into_iter()
        .map(|t| (t.logical_id.clone(), t))
        .collect();

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
        let arn = subscribe(clients, subscription, &topic.arn, &queue.arn).await?;
        subscriptions.insert(
            subscription.logical_id.clone(),
            DeployedSubscription {
                logical_id: subscription.logical_id.clone(),
                arn,
            },
        );
    }

    let mut functions = BTreeMap::new();
    for function in &stack.functions {
        let arn = resolver.attribute(&function.logical_id, "Arn")?;
        let mut environment = resolver.environment(function)?;
        // What Lambda sets in every execution environment (a template cannot override these).
        let reserved = [
            ("AWS_REGION", pseudo.region.clone()),
            ("AWS_DEFAULT_REGION", pseudo.region.clone()),
            ("AWS_LAMBDA_FUNCTION_NAME", function.name.clone()),
            (
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
                function.memory_size.to_string(),
            ),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
            (
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", function.name),
            ),
        ];
        for (key, value) in reserved {
            environment.insert(key.to_owned(), value);
        }
        functions.insert(
            function.logical_id.clone(),
            DeployedFunction {
                logical_id: function.logical_id.clone(),
                name: function.name.clone(),
                arn,
                binary: function.binary.clone(),
                timeout: function.timeout,
                environment,
                events: function.events.clone(),
            },
        );
    }

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
        stack_name: pseudo.stack_name.clone(),
        region: pseudo.region.clone(),
        tables: tables
            .into_iter()
            .map(|t| (t.logical_id.clone(), t))
            .collect(),
        stack,
        topics,
        queues,
        subscriptions,
        functions,
    })
}

async fn create_table(
    clients: &Clients,
    table: &template::Table,
) -> Result<DeployedTable, ProvisionError> {
    let name = &table.name;
    let keys = |schema: &[template::KeyElement]| {
        schema
            .iter()
            .map(|k| {
                KeySchemaElement::builder()
                    .attribute_name(&k.attribute_name)
                    .key_type(KeyType::from(k.key_type.as_str()))
                    .build()
                    .map_err(aws_error("CreateTable", name))
            })
            .collect::<Result<Vec<_>, _>>()
    };
    let mut request = clients
        .dynamodb
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_key_schema(Some(keys(&table.key_schema)?));
    for attribute in &table.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()
                .map_err(aws_error("CreateTable", name))?,
        );
    }
    for index in &table.global_secondary_indexes {
        let projection = Projection::builder()
            .projection_type(ProjectionType::from(index.projection_type.as_str()))
            .set_non_key_attributes(
                (!index.non_key_attributes.is_empty()).then(|| index.non_key_attributes.clone()),
            )
            .build();
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(keys(&index.key_schema)?))
                .projection(projection)
                .build()
                .map_err(aws_error("CreateTable", name))?,
        );
    }
    if let Some(view) = &table.stream_view_type {
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::from(view.as_str()))
                .build()
                .map_err(aws_error("CreateTable", name))?,
        );
    }
    match request.send().await {
        Ok(_) => tracing::debug!(table = %name, "table created"),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_in_use_exception()) =>
        {
            tracing::debug!(table = %name, "table exists");
        }
        Err(err) => return Err(aws_error("CreateTable", name)(err)),
    }

    // Wait for ACTIVE (indexes included), as CloudFormation does before dependents are created.
    let started = tokio::time::Instant::now();
    let description = loop {
        let described = clients
            .dynamodb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(aws_error("DescribeTable", name))?;
        let Some(description) = described.table else {
            return Err(unexpected(name, "DescribeTable returned no table"));
        };
        let indexes_active = description
            .global_secondary_indexes()
            .iter()
            .all(|i| i.index_status().is_none_or(|s| s.as_str() == "ACTIVE"));
        if description.table_status() == Some(&TableStatus::Active) && indexes_active {
            break description;
        }
        if started.elapsed() > WAIT_LIMIT {
            return Err(ProvisionError::Timeout {
                resource: name.clone(),
                state: "ACTIVE",
            });
        }
        tokio::time::sleep(POLL).await;
    };
    let arn = description
        .table_arn()
        .ok_or_else(|| unexpected(name, "DescribeTable returned no TableArn"))?
        .to_owned();

    let stream_arn = match &table.stream_view_type {
        None => None,
        Some(_) => {
            let stream_arn = description
                .latest_stream_arn()
                .ok_or_else(|| unexpected(name, "the table was created without its stream"))?
                .to_owned();
            wait_for_stream(clients, name, &stream_arn).await?;
            Some(stream_arn)
        }
    };

    if let Some(attribute) = &table.ttl_attribute {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(attribute)
            .enabled(true)
            .build()
            .map_err(aws_error("UpdateTimeToLive", name))?;
        match clients
            .dynamodb
            .update_time_to_live()
            .table_name(name)
            .time_to_live_specification(spec)
            .send()
            .await
        {
            Ok(_) => {}
            // Enabling TTL twice is a ValidationException ("TimeToLive is already enabled").
            Err(err) if is_already_enabled(&err) => {}
            Err(err) => return Err(aws_error("UpdateTimeToLive", name)(err)),
        }
    }
    Ok(DeployedTable {
        logical_id: table.logical_id.clone(),
        name: name.clone(),
        arn,
        stream_arn,
    })
}

fn is_already_enabled<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().is_some_and(|e| {
        e.code() == Some("ValidationException")
            && e.message().is_some_and(|m| m.contains("already enabled"))
    })
}

async fn wait_for_stream(
    clients: &Clients,
    table: &str,
    stream_arn: &str,
) -> Result<(), ProvisionError> {
    let started = tokio::time::Instant::now();
    loop {
        let described = clients
            .streams
            .describe_stream()
            .stream_arn(stream_arn)
            .limit(1)
            .send()
            .await
            .map_err(aws_error("DescribeStream", stream_arn))?;
        let status = described
            .stream_description()
            .and_then(|d| d.stream_status())
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ENABLED") {
            return Ok(());
        }
        if started.elapsed() > WAIT_LIMIT {
            return Err(ProvisionError::Timeout {
                resource: format!("stream of {table}"),
                state: "ENABLED",
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn create_topic(
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

async fn create_queue(
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
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(aws_error("GetQueueAttributes", name))?;
    let arn = attributes
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .ok_or_else(|| unexpected(name, "GetQueueAttributes returned no QueueArn"))?
        .clone();
    Ok(DeployedQueue {
        logical_id: queue.logical_id.clone(),
        name: name.clone(),
        url,
        arn,
        dead_letter,
    })
}

async fn subscribe(
    clients: &Clients,
    subscription: &template::Subscription,
    topic_arn: &str,
    queue_arn: &str,
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
        let result = clients
            .sns
            .unsubscribe()
            .subscription_arn(&subscription.arn)
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) => {}
            Err(e) => failures.push(aws_error("Unsubscribe", &subscription.arn)(e)),
        }
    }
    for topic in deployment.topics.values() {
        match clients
            .sns
            .delete_topic()
            .topic_arn(&topic.arn)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_not_found_exception()) => {}
            Err(e) => failures.push(aws_error("DeleteTopic", &topic.name)(e)),
        }
    }
    for queue in deployment.queues.values() {
        match clients
            .sqs
            .delete_queue()
            .queue_url(&queue.url)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_queue_does_not_exist()) => {}
            Err(e) => failures.push(aws_error("DeleteQueue", &queue.name)(e)),
        }
    }
    for table in deployment.tables.values() {
        match clients
            .dynamodb
            .delete_table()
            .table_name(&table.name)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_resource_not_found_exception()) => {}
            Err(e) => failures.push(aws_error("DeleteTable", &table.name)(e)),
        }
    }
    for failure in failures.iter().skip(1) {
        tracing::warn!(error = %ripple_kit::telemetry::error_chain(failure), "teardown");
    }
    let count = failures.len();
    match failures.into_iter().next() {
        None => {
            tracing::info!(stack = %deployment.stack_name, "torn down");
            Ok(())
        }
        Some(first) => Err(ProvisionError::Teardown {
            count,
            first: Box::new(first),
        }),
    }
}

/// Checks that every service the runner uses answers, with a short timeout per service.
pub async fn check_reachable(clients: &Clients) -> Result<(), ProvisionError> {
    const LIMIT: Duration = Duration::from_secs(10);
    fn endpoint(service_var: &str) -> String {
        std::env::var(service_var)
            .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
            .unwrap_or_else(|_| "the default AWS endpoint (AWS_ENDPOINT_URL is not set)".into())
    }
    fn unreachable(service: &'static str, var: &str, source: BoxError) -> ProvisionError {
        ProvisionError::Unreachable {
            service,
            endpoint: endpoint(var),
            source,
        }
    }
    let timed_out = || -> BoxError { format!("no answer within {} s", LIMIT.as_secs()).into() };
    match tokio::time::timeout(LIMIT, clients.dynamodb.list_tables().limit(1).send()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(unreachable(
                "DynamoDB",
                "AWS_ENDPOINT_URL_DYNAMODB",
                Box::new(e),
            ));
        }
        Err(_) => {
            return Err(unreachable(
                "DynamoDB",
                "AWS_ENDPOINT_URL_DYNAMODB",
                timed_out(),
            ));
        }
    }
    match tokio::time::timeout(LIMIT, clients.streams.list_streams().limit(1).send()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            return Err(unreachable(
                "DynamoDB Streams",
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
                Box::new(e),
            ));
        }
        Err(_) => {
            return Err(unreachable(
                "DynamoDB Streams",
                "AWS_ENDPOINT_URL_DYNAMODB_STREAMS",
                timed_out(),
            ));
        }
    }
    match tokio::time::timeout(LIMIT, clients.sns.list_topics().send()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable("SNS", "AWS_ENDPOINT_URL_SNS", Box::new(e))),
        Err(_) => return Err(unreachable("SNS", "AWS_ENDPOINT_URL_SNS", timed_out())),
    }
    match tokio::time::timeout(LIMIT, clients.sqs.list_queues().max_results(1).send()).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(unreachable("SQS", "AWS_ENDPOINT_URL_SQS", Box::new(e))),
        Err(_) => return Err(unreachable("SQS", "AWS_ENDPOINT_URL_SQS", timed_out())),
    }
    Ok(())
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
