//! What provisioning created for one stack, as the services reported it: names, ARNs, queue
//! URLs, and each function ready to run with its resolved environment.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::template::{EventSource, Stack};

/// What was created for one stack: physical names, ARNs, queue URLs and each function's
/// resolved environment.
#[derive(Debug, Clone, Serialize)]
pub struct Deployment {
    /// The stack name.
    pub stack_name: String,
    /// The region.
    pub region: String,
    /// Who made it: the runner, or CloudFormation.
    pub origin: Origin,
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

/// Who made a stack's resources.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// The runner (`ripple up`, `ripple dev --keep`), under the names it gives them.
    Ripple,
    /// CloudFormation (`sam deploy`), under the physical ids it lists.
    CloudFormation {
        /// The stack's ARN.
        stack_id: String,
        /// Its status when it was read.
        status: String,
        /// Its outputs by key (`ApiUrl`, …).
        outputs: BTreeMap<String, String>,
    },
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

/// What Lambda sets in every execution environment, and a template cannot set.
pub const LAMBDA_VARIABLES: [&str; 6] = [
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_LOG_GROUP_NAME",
];

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

impl DeployedFunction {
    /// The variables its template entry declares (its own and `Globals`'), resolved: its
    /// environment without [`LAMBDA_VARIABLES`].
    pub fn template_environment(&self) -> BTreeMap<&str, &str> {
        self.environment
            .iter()
            .filter(|(key, _)| !LAMBDA_VARIABLES.contains(&key.as_str()))
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect()
    }
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

    /// The event store's table: the one orders-api appends to, else the one the outbox publisher
    /// reads.
    pub fn events_table(&self) -> Option<String> {
        if let Some(name) = self
            .function_by_binary("orders-api")
            .and_then(|f| f.environment.get("EVENTS_TABLE"))
        {
            return Some(name.clone());
        }
        self.functions
            .values()
            .flat_map(|f| &f.events)
            .find_map(|e| match e {
                EventSource::DynamoDb(s) => self.table(&s.table).map(|t| t.name.clone()),
                _ => None,
            })
    }

    /// What `event` is, named as the stack names its resources (`queue ripple-inventory`).
    pub fn trigger(&self, event: &EventSource) -> String {
        match event {
            EventSource::HttpApi(route) => route.route_key(),
            EventSource::Sqs(s) => format!(
                "queue {}",
                self.queue(&s.queue)
                    .map_or(s.queue.as_str(), |q| q.name.as_str())
            ),
            EventSource::DynamoDb(s) => format!(
                "stream of {}",
                self.table(&s.table)
                    .map_or(s.table.as_str(), |t| t.name.as_str())
            ),
            EventSource::Schedule(schedule) => {
                format!("every {:?} ({})", schedule.every, schedule.name)
            }
            EventSource::Other { name, event_type } => {
                format!("{event_type} {name} (not emulated)")
            }
        }
    }

    /// The function named `name`: its logical id (`OrdersApiFunction`) or its binary
    /// (`orders-api`).
    pub fn function_named(&self, name: &str) -> Option<&DeployedFunction> {
        self.function(name)
            .or_else(|| self.function_by_binary(name))
    }

    /// The dead-letter queue of a queue.
    pub fn dead_letter_queue_of(&self, logical_id: &str) -> Option<&DeployedQueue> {
        let redrive = self.stack.queue(logical_id)?.redrive.as_ref()?;
        self.queues.get(&redrive.dead_letter_queue)
    }
}
