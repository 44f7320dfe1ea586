//! The model: what a template declares for one stack, in the terms the runner works in.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::error::{TemplateError, invalid};
use super::pseudo::PseudoParameters;

/// What a template declares for one stack, in the terms the runner works in.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    /// The stack's pseudo parameters.
    pub pseudo: PseudoParameters,
    /// DynamoDB tables.
    pub tables: Vec<Table>,
    /// SNS topics.
    pub topics: Vec<Topic>,
    /// SQS queues.
    pub queues: Vec<Queue>,
    /// SNS → SQS subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// Lambda functions.
    pub functions: Vec<Function>,
    /// Resources the runner does not emulate.
    pub ignored: Vec<Ignored>,
}

impl Stack {
    /// A table by logical id.
    pub fn table(&self, logical_id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.logical_id == logical_id)
    }

    /// A topic by logical id.
    pub fn topic(&self, logical_id: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.logical_id == logical_id)
    }

    /// A queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    /// A function by logical id.
    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    /// Queues ordered so that every dead-letter queue comes before the queues that use it.
    pub fn queues_dlq_first(&self) -> Vec<&Queue> {
        let mut ordered: Vec<&Queue> = Vec::with_capacity(self.queues.len());
        fn visit<'a>(
            stack: &'a Stack,
            queue: &'a Queue,
            ordered: &mut Vec<&'a Queue>,
            depth: usize,
        ) {
            if ordered.iter().any(|q| q.logical_id == queue.logical_id)
                || depth > stack.queues.len()
            {
                return;
            }
            if let Some(dlq) = queue
                .redrive
                .as_ref()
                .and_then(|r| stack.queue(&r.dead_letter_queue))
            {
                visit(stack, dlq, ordered, depth + 1);
            }
            ordered.push(queue);
        }
        for queue in &self.queues {
            visit(self, queue, &mut ordered, 0);
        }
        ordered
    }

    /// Whether a queue is some other queue's, or a subscription's, dead-letter queue.
    pub fn is_dead_letter_queue(&self, logical_id: &str) -> bool {
        let of_a_queue = self.queues.iter().any(|q| {
            q.redrive
                .as_ref()
                .is_some_and(|r| r.dead_letter_queue == logical_id)
        });
        of_a_queue
            || self
                .subscriptions
                .iter()
                .any(|s| s.dead_letter_queue.as_deref() == Some(logical_id))
    }

    pub(super) fn check_references(&self) -> Result<(), TemplateError> {
        let missing = |at: String, what: &str, id: &str| {
            invalid(&at, format!("{id} is not a {what} of this template"))
        };
        for q in &self.queues {
            if let Some(r) = &q.redrive
                && self.queue(&r.dead_letter_queue).is_none()
            {
                return Err(missing(
                    format!("Resources.{}.RedrivePolicy", q.logical_id),
                    "queue",
                    &r.dead_letter_queue,
                ));
            }
        }
        for s in &self.subscriptions {
            let at = format!("Resources.{}", s.logical_id);
            if self.topic(&s.topic).is_none() {
                return Err(missing(at.clone(), "topic", &s.topic));
            }
            if self.queue(&s.queue).is_none() {
                return Err(missing(at, "queue", &s.queue));
            }
            if let Some(dlq) = &s.dead_letter_queue
                && self.queue(dlq).is_none()
            {
                return Err(missing(format!("{at}.RedrivePolicy"), "queue", dlq));
            }
        }
        for f in &self.functions {
            for event in &f.events {
                let at = format!("Resources.{}.Events", f.logical_id);
                match event {
                    EventSource::Sqs(s) if self.queue(&s.queue).is_none() => {
                        return Err(missing(at, "queue", &s.queue));
                    }
                    EventSource::DynamoDb(s) => {
                        let table = self
                            .table(&s.table)
                            .ok_or_else(|| missing(at.clone(), "table", &s.table))?;
                        if table.stream_view_type.is_none() {
                            return Err(invalid(&at, format!("table {} has no stream", s.table)));
                        }
                        if let Some(dest) = &s.on_failure
                            && self.queue(dest).is_none()
                        {
                            return Err(missing(at, "queue", dest));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// A DynamoDB table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Logical id.
    pub logical_id: String,
    /// Table name.
    pub name: String,
    /// Primary key.
    pub key_schema: Vec<KeyElement>,
    /// Types of the key attributes (table and indexes).
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// Global secondary indexes.
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    /// `StreamSpecification.StreamViewType`, when the table has a stream.
    pub stream_view_type: Option<String>,
    /// The TTL attribute, when TTL is enabled.
    pub ttl_attribute: Option<String>,
}

/// One element of a key schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyElement {
    /// Attribute name.
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// The type of a key attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeDefinition {
    /// Attribute name.
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecondaryIndex {
    /// Index name.
    pub index_name: String,
    /// Its key.
    pub key_schema: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    /// Attributes projected with `INCLUDE`.
    pub non_key_attributes: Vec<String>,
}

/// An SNS topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topic {
    /// Logical id.
    pub logical_id: String,
    /// Topic name.
    pub name: String,
    /// A FIFO topic.
    pub fifo: bool,
    /// FIFO deduplication by content.
    pub content_based_deduplication: bool,
}

/// An SQS queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Queue {
    /// Logical id.
    pub logical_id: String,
    /// Queue name.
    pub name: String,
    /// A FIFO queue.
    pub fifo: bool,
    /// FIFO deduplication by content.
    pub content_based_deduplication: bool,
    /// Visibility timeout in seconds.
    pub visibility_timeout: Option<u32>,
    /// Retention in seconds.
    pub message_retention_period: Option<u32>,
    /// Delivery delay in seconds.
    pub delay_seconds: Option<u32>,
    /// Where messages go after too many receives.
    pub redrive: Option<Redrive>,
}

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redrive {
    /// Logical id of the dead-letter queue.
    pub dead_letter_queue: String,
    /// Receives before a message moves there.
    pub max_receive_count: u32,
}

/// An SNS subscription delivering to one of the template's queues.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    /// Logical id.
    pub logical_id: String,
    /// Logical id of the topic.
    pub topic: String,
    /// Logical id of the queue.
    pub queue: String,
    /// Deliver the message itself rather than an SNS notification.
    pub raw_message_delivery: bool,
    /// The filter policy, as JSON.
    pub filter_policy: Option<Json>,
    /// `MessageAttributes` (default) or `MessageBody`.
    pub filter_policy_scope: Option<String>,
    /// Logical id of the queue SNS moves undeliverable messages to (`RedrivePolicy`).
    pub dead_letter_queue: Option<String>,
}

/// A Lambda function.
#[derive(Debug, Clone, Serialize)]
pub struct Function {
    /// Logical id.
    pub logical_id: String,
    /// Function name.
    pub name: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// Timeout (the function's, else `Globals`', else 3 s).
    pub timeout: Duration,
    /// Memory size in MB.
    pub memory_size: u32,
    /// Environment variables, unresolved (see [`Resolver::environment`](super::Resolver::environment)).
    #[serde(skip)]
    pub environment: BTreeMap<String, Yaml>,
    /// The event sources it runs behind.
    pub events: Vec<EventSource>,
}

/// An event that invokes a function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum EventSource {
    /// An SQS event source mapping.
    Sqs(SqsSource),
    /// A DynamoDB stream event source mapping.
    DynamoDb(StreamSource),
    /// An HTTP API route.
    HttpApi(HttpRoute),
    /// An EventBridge schedule (`Type: Schedule` with `rate(...)`).
    Schedule(ScheduleSource),
    /// Any other event type (not emulated).
    Other {
        /// The event's name in the template.
        name: String,
        /// Its type.
        event_type: String,
    },
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqsSource {
    /// The event's name in the template.
    pub name: String,
    /// Logical id of the queue.
    pub queue: String,
    /// Messages per invocation (1-10 here: one ReceiveMessage).
    pub batch_size: u32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `FilterCriteria` patterns.
    pub filters: Vec<Json>,
}

/// A DynamoDB stream event source mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamSource {
    /// The event's name in the template.
    pub name: String,
    /// Logical id of the table.
    pub table: String,
    /// Where a new mapping starts reading.
    pub starting_position: StartingPosition,
    /// Records per invocation.
    pub batch_size: u32,
    /// Retries of a failing batch; `None` retries until the record expires.
    pub maximum_retry_attempts: Option<u32>,
    /// `MaximumRecordAgeInSeconds`: a failing record older than this is given up on; `None`
    /// (no setting, or -1) never gives up on age.
    pub maximum_record_age: Option<Duration>,
    /// `BisectBatchOnFunctionError`: a batch whose invocation failed is split in two and retried.
    pub bisect_on_function_error: bool,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `FilterCriteria` patterns.
    pub filters: Vec<Json>,
    /// Logical id of the on-failure destination queue.
    pub on_failure: Option<String>,
}

/// An EventBridge schedule that invokes a function at a fixed rate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleSource {
    /// The event's name in the template.
    pub name: String,
    /// The rate: `rate(5 minutes)` is five minutes.
    pub every: Duration,
}

/// Where a stream mapping starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StartingPosition {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records written after the mapping starts.
    Latest,
}

/// An HTTP API route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRoute {
    /// The event's name in the template.
    pub name: String,
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Path template (`/orders/{id}`), or `$default`.
    pub path: String,
    /// What a request must carry to be let through.
    pub authorization: Authorization,
}

/// How API Gateway authorizes a route's requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub enum Authorization {
    /// Anyone may call it.
    #[default]
    None,
    /// A JWT the named authorizer verifies, holding at least one of `scopes` (any scope when
    /// empty).
    Jwt {
        /// The authorizer's name in the API's `Auth.Authorizers`.
        authorizer: String,
        /// The route's `AuthorizationScopes`.
        scopes: Vec<String>,
    },
}

impl HttpRoute {
    /// The route key API Gateway reports: `POST /orders`, or `$default`.
    pub fn route_key(&self) -> String {
        if self.path == "$default" {
            self.path.clone()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }
}

/// A resource the runner leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Logical id.
    pub logical_id: String,
    /// Its type.
    pub resource_type: String,
    /// Why.
    pub reason: String,
}
