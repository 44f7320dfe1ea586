//! The rules that keep the pipeline from losing or stranding a message, checked on the project's
//! `template.yaml` as CloudFormation expands it: every queue that is not itself a dead-letter
//! queue has a redrive policy (to a DLQ of its own), every subscription has a DLQ, every DLQ an
//! alarm, a consumer queue stays invisible six times its function's timeout, no stream mapping
//! can discard a record, and the redelivery budget rides out a one-hour outage within the
//! queues' retention. Each rule is shown to catch the template broken its way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use ripple_kit::batch::{BASE_VARIABLE, CAP_VARIABLE, RedeliveryBackoff};
use serde_json::{Value as Json, json};
use serde_norway::Value as Yaml;

use super::*;

/// The outage a consumer queue must ride out without dead-lettering anything.
const OUTAGE: Duration = Duration::from_secs(3600);
/// What AWS recommends between a consumer queue's visibility timeout and its function's timeout.
const VISIBILITY_FACTOR: u64 = 6;

fn project_text() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap()
}

/// Every rule `text` breaks, one line each.
fn violations(text: &str) -> Vec<String> {
    let template = Template::parse(text).unwrap();
    let stack = template
        .stack(PseudoParameters::new("t1", DEFAULT_REGION))
        .unwrap();
    let mut found = Vec::new();
    redrive_everywhere(&stack, &mut found);
    subscriptions_keep_what_they_cannot_deliver(&stack, &mut found);
    every_dead_letter_queue_is_watched(&template, &stack, &mut found);
    for (queue, function) in consumed_queues(&stack) {
        visibility_outlasts_the_function(queue, function, &mut found);
        one_hour_outage_dead_letters_nothing(&stack, queue, function, &mut found);
    }
    streams_never_discard(&stack, &mut found);
    found
}

/// Every queue a function consumes, with that function.
fn consumed_queues(stack: &Stack) -> Vec<(&Queue, &Function)> {
    stack
        .functions
        .iter()
        .flat_map(|f| f.events.iter().map(move |e| (e, f)))
        .filter_map(|(event, function)| match event {
            EventSource::Sqs(source) => stack.queue(&source.queue).map(|q| (q, function)),
            _ => None,
        })
        .collect()
}

/// The queues stream mappings report given-up ranges to.
fn on_failure_destinations(stack: &Stack) -> BTreeSet<&str> {
    stack
        .functions
        .iter()
        .flat_map(|f| &f.events)
        .filter_map(|e| match e {
            EventSource::DynamoDb(s) => s.on_failure.as_deref(),
            _ => None,
        })
        .collect()
}

/// A queue that holds what failed elsewhere: a DLQ of a queue or subscription, an on-failure
/// destination. Those are where messages end; every other queue must lead to one.
fn holds_failures(stack: &Stack, logical_id: &str) -> bool {
    stack.is_dead_letter_queue(logical_id) || on_failure_destinations(stack).contains(logical_id)
}

fn redrive_everywhere(stack: &Stack, found: &mut Vec<String>) {
    let mut targets = BTreeSet::new();
    for queue in &stack.queues {
        match &queue.redrive {
            None if !holds_failures(stack, &queue.logical_id) => {
                found.push(format!("{} has no redrive policy", queue.logical_id));
            }
            Some(redrive) if !targets.insert(redrive.dead_letter_queue.as_str()) => {
                found.push(format!(
                    "{} shares its DLQ {}",
                    queue.logical_id, redrive.dead_letter_queue
                ));
            }
            _ => {}
        }
    }
}

fn subscriptions_keep_what_they_cannot_deliver(stack: &Stack, found: &mut Vec<String>) {
    for subscription in &stack.subscriptions {
        if subscription.dead_letter_queue.is_none() {
            found.push(format!("{} has no DLQ", subscription.logical_id));
        }
    }
}

fn every_dead_letter_queue_is_watched(template: &Template, stack: &Stack, found: &mut Vec<String>) {
    let resolver = template.resolver(stack.pseudo.clone());
    let alarms: Vec<Json> = template
        .resources()
        .filter(|r| r.resource_type == "AWS::CloudWatch::Alarm")
        .map(|r| resolver.resolve(r.properties()).unwrap())
        .collect();
    for queue in stack
        .queues
        .iter()
        .filter(|q| holds_failures(stack, &q.logical_id))
    {
        let watched = alarms.iter().any(|alarm| {
            alarm["Dimensions"] == json!([{"Name": "QueueName", "Value": queue.name}])
                && alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
                && alarm["ComparisonOperator"] == "GreaterThanThreshold"
                && alarm["Threshold"] == json!(0)
        });
        if !watched {
            found.push(format!(
                "{} has no alarm on its first message",
                queue.logical_id
            ));
        }
    }
}

fn visibility_outlasts_the_function(queue: &Queue, function: &Function, found: &mut Vec<String>) {
    // Without the attribute SQS uses 30 s.
    let visibility = u64::from(queue.visibility_timeout.unwrap_or(30));
    if visibility < VISIBILITY_FACTOR * function.timeout.as_secs() {
        found.push(format!(
            "{}: visibility {visibility} s is under {VISIBILITY_FACTOR} x the {} s timeout of {}",
            queue.logical_id,
            function.timeout.as_secs(),
            function.logical_id
        ));
    }
}

/// The consumer's backoff, as its template environment sets it (the kit's defaults otherwise).
fn backoff_of(function: &Function) -> RedeliveryBackoff {
    let env = ripple_kit::config::Env::new(|key: &str| {
        function.environment.get(key).and_then(|v| match v {
            Yaml::String(s) => Some(s.clone()),
            Yaml::Number(n) => Some(n.to_string()),
            _ => None,
        })
    });
    RedeliveryBackoff::from_env(&env).unwrap()
}

fn one_hour_outage_dead_letters_nothing(
    stack: &Stack,
    queue: &Queue,
    function: &Function,
    found: &mut Vec<String>,
) {
    let Some(redrive) = &queue.redrive else {
        return;
    };
    let backoff = backoff_of(function);
    // SQS moves a message on the receive after maxReceiveCount.
    let moved_at = redrive.max_receive_count + 1;
    let shortest = backoff.shortest_wait_before(moved_at);
    if shortest < OUTAGE {
        found.push(format!(
            "{}: {} receives with backoff {}..{} s can be used up in {} s, within a one-hour outage",
            queue.logical_id,
            redrive.max_receive_count,
            backoff.base.as_secs(),
            backoff.cap.as_secs(),
            shortest.as_secs()
        ));
    }
    let invocations = function.timeout * redrive.max_receive_count;
    let longest = backoff.longest_wait_before(moved_at) + invocations;
    // Without the attribute SQS keeps messages 4 days.
    let retention =
        Duration::from_secs(u64::from(queue.message_retention_period.unwrap_or(345_600)));
    if retention <= longest {
        found.push(format!(
            "{}: a message may still be retried after {} s, beyond its {} s retention",
            queue.logical_id,
            longest.as_secs(),
            retention.as_secs()
        ));
    }
    let dlq = stack.queue(&redrive.dead_letter_queue).unwrap();
    let dlq_retention = u64::from(dlq.message_retention_period.unwrap_or(345_600));
    // A standard queue keeps a message's first enqueue time when it moves it to the DLQ.
    if dlq_retention <= retention.as_secs() {
        found.push(format!(
            "{} keeps messages no longer than {} does",
            dlq.logical_id, queue.logical_id
        ));
    }
}

fn streams_never_discard(stack: &Stack, found: &mut Vec<String>) {
    for function in &stack.functions {
        for event in &function.events {
            let EventSource::DynamoDb(source) = event else {
                continue;
            };
            if let Some(retries) = source.maximum_retry_attempts {
                found.push(format!(
                    "{}.{} gives up after {retries} retries",
                    function.logical_id, source.name
                ));
            }
            if let Some(age) = source.maximum_record_age {
                found.push(format!(
                    "{}.{} gives up on records older than {} s",
                    function.logical_id,
                    source.name,
                    age.as_secs()
                ));
            }
        }
    }
}

/// The project template with `from` (which must be there) replaced by `to`.
fn broken(from: &str, to: &str) -> String {
    let text = project_text();
    assert!(text.contains(from), "the template no longer has {from:?}");
    text.replacen(from, to, 1)
}

fn assert_caught(text: &str, expected: &str) {
    let found = violations(text);
    assert!(
        found.iter().any(|v| v.contains(expected)),
        "expected a violation containing {expected:?}, got {found:#?}"
    );
}

#[test]
fn the_project_template_keeps_every_rule() {
    assert_eq!(violations(&project_text()), Vec::<String>::new());
}

#[test]
fn a_queue_without_a_redrive_policy_is_caught() {
    // The loop stands for every consumer: all five lose their policy.
    let text = broken(
        "          RedrivePolicy:\n            deadLetterTargetArn: !GetAtt [!Sub \"${Consumer}DLQ\", Arn]",
        "          NotARedrivePolicy:\n            deadLetterTargetArn: !GetAtt [!Sub \"${Consumer}DLQ\", Arn]",
    );
    assert_caught(&text, "InventoryQueue has no redrive policy");
}

#[test]
fn a_subscription_without_a_dlq_is_caught() {
    let text = broken(
        "          RedrivePolicy:\n            deadLetterTargetArn: !GetAtt [!Sub \"${Consumer}SubscriptionDLQ\", Arn]\n",
        "",
    );
    assert_caught(&text, "PaymentsSubscription has no DLQ");
}

#[test]
fn a_visibility_timeout_under_six_times_the_function_timeout_is_caught() {
    let text = broken(
        "          VisibilityTimeout: 60\n",
        "          VisibilityTimeout: 59\n",
    );
    assert_caught(&text, "visibility 59 s is under 6 x the 10 s timeout");
}

#[test]
fn a_stream_mapping_that_can_discard_is_caught() {
    let retries = broken(
        "            MaximumRetryAttempts: -1\n",
        "            MaximumRetryAttempts: 10\n",
    );
    assert_caught(&retries, "gives up after 10 retries");
    let age = broken(
        "            MaximumRecordAgeInSeconds: -1\n",
        "            MaximumRecordAgeInSeconds: 3600\n",
    );
    assert_caught(&age, "gives up on records older than 3600 s");
}

#[test]
fn a_dead_letter_queue_without_an_alarm_is_caught() {
    let text = broken(
        "              Value: !GetAtt [!Sub \"${Consumer}SubscriptionDLQ\", QueueName]",
        "              Value: !GetAtt [!Sub \"${Consumer}Queue\", QueueName]",
    );
    assert_caught(&text, "OrderSagaSubscriptionDLQ has no alarm");
    let quarantine = broken(
        "          Value: !GetAtt PublisherFailuresQueue.QueueName",
        "          Value: !GetAtt InventoryQueue.QueueName",
    );
    assert_caught(&quarantine, "PublisherFailuresQueue has no alarm");
}

#[test]
fn a_redelivery_budget_an_hour_down_can_use_up_is_caught() {
    let text = broken(
        "            maxReceiveCount: 20\n",
        "            maxReceiveCount: 10\n",
    );
    assert_caught(&text, "within a one-hour outage");
    let quick = broken(
        &format!("        {BASE_VARIABLE}: \"30\"\n"),
        &format!("        {BASE_VARIABLE}: \"1\"\n"),
    );
    let quick = quick.replacen(
        &format!("        {CAP_VARIABLE}: \"900\"\n"),
        &format!("        {CAP_VARIABLE}: \"60\"\n"),
        1,
    );
    assert_caught(&quick, "within a one-hour outage");
}

#[test]
fn a_retention_shorter_than_the_redelivery_budget_is_caught() {
    let text = broken(
        "          MessageRetentionPeriod: 345600\n",
        "          MessageRetentionPeriod: 7200\n",
    );
    assert_caught(&text, "beyond its 7200 s retention");
}
