//! Resource extraction: the tables, topics, queues, subscriptions and functions of a template,
//! resolved for one stack into the model the provisioner and the runtime work from.

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::document::Resource;
use super::error::{TemplateError, invalid};
use super::intrinsic::target_of;
use super::model::{
    AttributeDefinition, Ignored, KeyElement, Queue, Redrive, SecondaryIndex, Stack, Subscription,
    Table, Topic,
};
use super::resolver::Resolver;

impl Resolver<'_> {
    /// Models what the template declares for this stack.
    pub fn stack(&self) -> Result<Stack, TemplateError> {
        let mut stack = Stack {
            pseudo: self.pseudo.clone(),
            tables: Vec::new(),
            topics: Vec::new(),
            queues: Vec::new(),
            subscriptions: Vec::new(),
            functions: Vec::new(),
            ignored: Vec::new(),
        };
        for resource in self.template.resources.values() {
            if let Some(condition) = &resource.condition
                && !self.named_condition(
                    condition,
                    &format!("Resources.{}.Condition", resource.logical_id),
                    0,
                )?
            {
                continue;
            }
            match resource.resource_type.as_str() {
                "AWS::DynamoDB::Table" => stack.tables.push(self.table(resource)?),
                "AWS::SNS::Topic" => stack.topics.push(self.topic(resource)?),
                "AWS::SQS::Queue" => stack.queues.push(self.queue(resource)?),
                "AWS::SNS::Subscription" => match self.subscription(resource)? {
                    Ok(subscription) => stack.subscriptions.push(subscription),
                    Err(reason) => stack.ignored.push(Ignored {
                        logical_id: resource.logical_id.clone(),
                        resource_type: resource.resource_type.clone(),
                        reason,
                    }),
                },
                "AWS::Serverless::Function" => stack.functions.push(self.function(resource)?),
                other => stack.ignored.push(Ignored {
                    logical_id: resource.logical_id.clone(),
                    resource_type: other.to_owned(),
                    reason: "not emulated".to_owned(),
                }),
            }
        }
        stack.check_references()?;
        Ok(stack)
    }

    fn table(&self, r: &Resource) -> Result<Table, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        // Only the properties the runner uses are resolved: others reference resources it does
        // not emulate (the KMS key).
        let mut props = serde_json::Map::new();
        for key in [
            "KeySchema",
            "AttributeDefinitions",
            "GlobalSecondaryIndexes",
            "StreamSpecification",
            "TimeToLiveSpecification",
        ] {
            if let Some(value) = r.properties.get(key)
                && let Some(value) = self.eval(value, &format!("{at}.{key}"), 0)?
            {
                props.insert(key.to_owned(), value);
            }
        }
        let props = Json::Object(props);
        Ok(Table {
            logical_id: r.logical_id.clone(),
            name: self.physical_name(r, 0)?,
            key_schema: key_schema(&props["KeySchema"], &format!("{at}.KeySchema"))?,
            attribute_definitions: attribute_definitions(&props["AttributeDefinitions"], &at)?,
            global_secondary_indexes: secondary_indexes(&props["GlobalSecondaryIndexes"], &at)?,
            stream_view_type: props["StreamSpecification"]["StreamViewType"]
                .as_str()
                .map(str::to_owned),
            ttl_attribute: ttl_attribute(&props["TimeToLiveSpecification"]),
        })
    }

    fn topic(&self, r: &Resource) -> Result<Topic, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        let flag = |key: &str| match r.properties.get(key) {
            Some(v) => self.flag(v, &format!("{at}.{key}"), 0),
            None => Ok(false),
        };
        Ok(Topic {
            logical_id: r.logical_id.clone(),
            name: self.physical_name(r, 0)?,
            fifo: flag("FifoTopic")?,
            content_based_deduplication: flag("ContentBasedDeduplication")?,
        })
    }

    fn queue(&self, r: &Resource) -> Result<Queue, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        let props = &r.properties;
        let flag = |key: &str| match props.get(key) {
            Some(v) => self.flag(v, &format!("{at}.{key}"), 0),
            None => Ok(false),
        };
        let number = |key: &str| match props.get(key) {
            Some(v) => self.number(v, &format!("{at}.{key}")).map(Some),
            None => Ok(None),
        };
        let redrive = match props.get("RedrivePolicy") {
            None => None,
            Some(policy) => {
                let at = format!("{at}.RedrivePolicy");
                let policy = redrive_policy(policy)?;
                let count = policy
                    .get("maxReceiveCount")
                    .ok_or_else(|| invalid(&at, "has no maxReceiveCount"))?;
                Some(Redrive {
                    dead_letter_queue: dead_letter_target(&policy, &at)?,
                    max_receive_count: self.number(count, &format!("{at}.maxReceiveCount"))?,
                })
            }
        };
        Ok(Queue {
            logical_id: r.logical_id.clone(),
            name: self.physical_name(r, 0)?,
            fifo: flag("FifoQueue")?,
            content_based_deduplication: flag("ContentBasedDeduplication")?,
            visibility_timeout: number("VisibilityTimeout")?,
            message_retention_period: number("MessageRetentionPeriod")?,
            delay_seconds: number("DelaySeconds")?,
            redrive,
        })
    }

    /// A subscription the runner can create, or why it cannot.
    fn subscription(&self, r: &Resource) -> Result<Result<Subscription, String>, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        let props = &r.properties;
        let protocol = self.string(
            props
                .get("Protocol")
                .ok_or_else(|| invalid(&at, "has no Protocol"))?,
            &format!("{at}.Protocol"),
            0,
        )?;
        if protocol != "sqs" {
            return Ok(Err(format!("protocol {protocol} is not emulated")));
        }
        let topic = props.get("TopicArn").and_then(target_of);
        let queue = props.get("Endpoint").and_then(target_of);
        let (Some((topic, _)), Some((queue, _))) = (topic, queue) else {
            return Ok(Err(
                "topic or endpoint is not a resource of this template".into()
            ));
        };
        let raw_message_delivery = match props.get("RawMessageDelivery") {
            Some(v) => self.flag(v, &format!("{at}.RawMessageDelivery"), 0)?,
            None => false,
        };
        let filter_policy = match props.get("FilterPolicy") {
            None => None,
            Some(v) => Some(match self.eval(v, &format!("{at}.FilterPolicy"), 0)? {
                Some(Json::String(text)) => serde_json::from_str(&text)
                    .map_err(|e| invalid(&at, format!("FilterPolicy is not JSON: {e}")))?,
                Some(other) => other,
                None => Json::Null,
            }),
        };
        let filter_policy_scope = match props.get("FilterPolicyScope") {
            None => None,
            Some(v) => Some(self.string(v, &format!("{at}.FilterPolicyScope"), 0)?),
        };
        let dead_letter_queue = match props.get("RedrivePolicy") {
            None => None,
            Some(policy) => Some(dead_letter_target(policy, &format!("{at}.RedrivePolicy"))?),
        };
        Ok(Ok(Subscription {
            logical_id: r.logical_id.clone(),
            topic,
            queue,
            raw_message_delivery,
            filter_policy,
            filter_policy_scope,
            dead_letter_queue,
        }))
    }
}

/// A `RedrivePolicy`, which may also be written as a JSON string.
fn redrive_policy(policy: &Yaml) -> Result<Yaml, TemplateError> {
    match policy {
        Yaml::String(text) => serde_norway::from_str(text).map_err(TemplateError::Yaml),
        other => Ok(other.clone()),
    }
}

/// The logical id of the queue a (queue's or subscription's) `RedrivePolicy` targets.
fn dead_letter_target(policy: &Yaml, at: &str) -> Result<String, TemplateError> {
    let policy = redrive_policy(policy)?;
    let target = policy
        .get("deadLetterTargetArn")
        .ok_or_else(|| invalid(at, "has no deadLetterTargetArn"))?;
    let (dlq, _) = target_of(target).ok_or_else(|| {
        invalid(
            at,
            "deadLetterTargetArn must be !GetAtt <a queue of this template>.Arn",
        )
    })?;
    Ok(dlq)
}

fn str_field(value: &Json, key: &str, at: &str) -> Result<String, TemplateError> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, format!("{key} must be a string")))
}

fn key_schema(value: &Json, at: &str) -> Result<Vec<KeyElement>, TemplateError> {
    value
        .as_array()
        .ok_or_else(|| invalid(at, "KeySchema must be a list"))?
        .iter()
        .map(|k| {
            Ok(KeyElement {
                attribute_name: str_field(k, "AttributeName", at)?,
                key_type: str_field(k, "KeyType", at)?,
            })
        })
        .collect()
}

fn attribute_definitions(
    value: &Json,
    at: &str,
) -> Result<Vec<AttributeDefinition>, TemplateError> {
    value
        .as_array()
        .ok_or_else(|| invalid(at, "AttributeDefinitions must be a list"))?
        .iter()
        .map(|a| {
            Ok(AttributeDefinition {
                attribute_name: str_field(a, "AttributeName", at)?,
                attribute_type: str_field(a, "AttributeType", at)?,
            })
        })
        .collect()
}

fn secondary_indexes(value: &Json, at: &str) -> Result<Vec<SecondaryIndex>, TemplateError> {
    let Some(indexes) = value.as_array() else {
        return Ok(Vec::new());
    };
    let mut out = Vec::with_capacity(indexes.len());
    for (i, index) in indexes.iter().enumerate() {
        let at = format!("{at}.GlobalSecondaryIndexes[{i}]");
        out.push(SecondaryIndex {
            index_name: str_field(index, "IndexName", &at)?,
            key_schema: key_schema(&index["KeySchema"], &at)?,
            projection_type: index["Projection"]["ProjectionType"]
                .as_str()
                .unwrap_or("ALL")
                .to_owned(),
            non_key_attributes: index["Projection"]["NonKeyAttributes"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The TTL attribute, when `TimeToLiveSpecification` enables TTL.
fn ttl_attribute(ttl: &Json) -> Option<String> {
    let enabled = matches!(&ttl["Enabled"], Json::Bool(true))
        || ttl["Enabled"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("true"));
    enabled
        .then(|| ttl["AttributeName"].as_str().map(str::to_owned))
        .flatten()
}
