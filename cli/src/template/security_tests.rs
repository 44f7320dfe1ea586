//! The project's `template.yaml` holds its security model: each role writes exactly the aggregates
//! its producer may (the one allowlist, `domain::producers`), every route needs its scope, only the
//! outbox speaks on the topic and only the topic (or the redrive role) fills a consumer queue, and
//! the operations controls (encrypted logs, alarms with an action, capped concurrency, a protected
//! event store) are there, with every control deliberately left out explained.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use ripple_kit::Reactor;
use ripple_kit::store::DynamoEventStore;
use serde_norway::Value as Yaml;

use super::project_tests::project;
use super::*;

type Payments =
    payments::Payments<payments::SimulatedGateway, ripple_kit::idempotency::DynamoIdempotencyStore>;

/// The producers among the functions: binary, the `source` its events carry, and the other keys
/// it keeps in the events table (its dedupe markers; the sweeper's cursors), which are never
/// events: an event item under them is not at its own stream and the outbox refuses it.
fn producers() -> Vec<(&'static str, &'static str, Option<&'static str>)> {
    vec![
        ("orders-api", orders_api::SOURCE, None),
        ("sweeper", sweeper::SOURCE, Some("sweep#*")),
        (
            "inventory",
            <inventory::Inventory as Reactor<DynamoEventStore>>::SOURCE,
            Some(dedupe(
                <inventory::Inventory as Reactor<DynamoEventStore>>::NAME,
            )),
        ),
        (
            "payments",
            <Payments as Reactor<DynamoEventStore>>::SOURCE,
            Some(dedupe(<Payments as Reactor<DynamoEventStore>>::NAME)),
        ),
        (
            "order-saga",
            <order_saga::Saga as Reactor<DynamoEventStore>>::SOURCE,
            Some(dedupe(
                <order_saga::Saga as Reactor<DynamoEventStore>>::NAME,
            )),
        ),
    ]
}

/// The key pattern of a consumer's dedupe markers.
fn dedupe(consumer: &str) -> &'static str {
    String::leak(format!("dedupe#{consumer}#*"))
}

/// The statements of the inline policies of the role `function` runs as.
fn role_statements<'t>(template: &'t Template, function: &Function) -> Vec<&'t Yaml> {
    let declared = template.resource(&function.logical_id).unwrap();
    let (role, _) = target_of(&declared.properties()["Role"]).unwrap();
    let role = template.resource(&role).unwrap();
    role.properties()["Policies"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|p| p["PolicyDocument"]["Statement"].as_sequence().unwrap())
        .collect()
}

fn strings(value: &Yaml) -> Vec<String> {
    match value {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

fn names(value: &Yaml) -> BTreeSet<String> {
    strings(value).into_iter().collect()
}

/// The `dynamodb:LeadingKeys` patterns under which a statement lets its role put items into the
/// events table, if it does.
fn event_store_writes(statement: &Yaml) -> Option<BTreeSet<String>> {
    let writes = strings(&statement["Action"])
        .iter()
        .any(|a| a == "dynamodb:PutItem");
    let on_events = target_of(&statement["Resource"]).is_some_and(|(id, _)| id == "EventsTable");
    if !(writes && on_events && statement["Effect"] == "Allow") {
        return None;
    }
    let keys = &statement["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"];
    assert!(
        !keys.is_null(),
        "a statement lets its role write any key of the events table"
    );
    Some(names(keys))
}

#[test]
fn each_role_writes_exactly_the_aggregates_its_producer_may_write() {
    let (template, stack) = project();
    let allowlist = domain::producers();
    for function in &stack.functions {
        let written: BTreeSet<String> = role_statements(&template, function)
            .into_iter()
            .filter_map(event_store_writes)
            .flatten()
            .collect();
        let Some((_, source, bookkeeping)) = producers()
            .into_iter()
            .find(|(b, _, _)| *b == function.binary)
        else {
            assert!(
                written.is_empty(),
                "{} produces no events but may write {written:?}",
                function.binary
            );
            continue;
        };
        let mut expected: BTreeSet<String> = allowlist
            .aggregate_types(source)
            .map(|t| format!("{t}#*"))
            .collect();
        expected.extend(bookkeeping.map(str::to_owned));
        assert_eq!(written, expected, "{} ({source})", function.binary);
    }
    // Every writer of the allowlist but the operators' catalog runs as one of the functions.
    let run: BTreeSet<&str> = producers().iter().map(|(_, s, _)| *s).collect();
    let declared: BTreeSet<&str> = allowlist.producers().collect();
    let operated = BTreeSet::from([domain::sources::CATALOG]);
    assert_eq!(
        declared.difference(&run).copied().collect::<BTreeSet<_>>(),
        operated
    );
}

#[test]
fn every_route_needs_a_token_with_the_scope_of_what_it_does() {
    let (template, stack) = project();
    let api = template.resource("HttpApi").unwrap();
    let auth = &api.properties()["Auth"];
    let default = auth["DefaultAuthorizer"].as_str().unwrap();
    let authorizer = &auth["Authorizers"][default];
    assert_eq!(
        authorizer["IdentitySource"],
        "$request.header.Authorization"
    );
    assert!(!authorizer["JwtConfiguration"]["issuer"].is_null());
    assert!(!authorizer["JwtConfiguration"]["audience"].is_null());
    let mut routes = 0;
    for function in &stack.functions {
        let declared = template.resource(&function.logical_id).unwrap();
        for event in function.events.iter() {
            let EventSource::HttpApi(route) = event else {
                continue;
            };
            routes += 1;
            let route_auth =
                &declared.properties()["Events"][route.name.as_str()]["Properties"]["Auth"];
            assert!(
                route_auth["Authorizer"].is_null(),
                "{} chooses its own authorizer",
                route.route_key()
            );
            let scope = match route.method.as_str() {
                "GET" => orders_api::identity::scopes::READ,
                _ => orders_api::identity::scopes::WRITE,
            };
            assert_eq!(
                strings(&route_auth["AuthorizationScopes"]),
                [scope],
                "{}",
                route.route_key()
            );
            // And the local runner reads it so, to verify tokens as API Gateway does.
            assert_eq!(
                route.authorization,
                Authorization::Jwt {
                    authorizer: default.to_owned(),
                    scopes: vec![scope.to_owned()]
                }
            );
        }
    }
    assert_eq!(routes, 4);
    // The stack's own user pool issues exactly those scopes.
    let client = template.resource("CustomerAppClient").unwrap();
    let granted = names(&client.properties()["AllowedOAuthScopes"]);
    for scope in [
        orders_api::identity::scopes::READ,
        orders_api::identity::scopes::WRITE,
    ] {
        assert!(granted.contains(scope), "{scope}");
    }
}

/// The statements of a topic or queue policy.
fn policy(template: &Template, logical_id: &str) -> Vec<Yaml> {
    template.resource(logical_id).unwrap().properties()["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .clone()
}

fn denies<'p>(statements: &'p [Yaml], action: &str) -> Vec<&'p Yaml> {
    statements
        .iter()
        .filter(|s| s["Effect"] == "Deny" && strings(&s["Action"]).iter().any(|a| a == action))
        .collect()
}

#[test]
fn only_the_outbox_publishes_and_only_the_consumer_queues_subscribe() {
    let (template, stack) = project();
    let statements = policy(&template, "DomainEventsTopicPolicy");
    let publish = denies(&statements, "sns:Publish");
    let exempt: Vec<Vec<(String, String)>> = publish
        .iter()
        .map(|s| {
            let listed = &s["Condition"]["ArnNotEquals"]["aws:PrincipalArn"];
            listed
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(target_of)
                .collect()
        })
        .collect();
    let expected = vec![
        ("OutboxPublisherRole".to_owned(), "Arn".to_owned()),
        ("RepublishRole".to_owned(), "Arn".to_owned()),
    ];
    assert!(exempt.contains(&expected), "{exempt:?}");
    let subscribe = denies(&statements, "sns:Subscribe");
    let endpoints: BTreeSet<String> = subscribe[0]["Condition"]["StringNotEquals"]["sns:Endpoint"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|e| target_of(e).unwrap().0)
        .collect();
    let subscribed: BTreeSet<String> = stack
        .subscriptions
        .iter()
        .filter(|s| s.topic == "DomainEventsTopic")
        .map(|s| s.queue.clone())
        .collect();
    assert_eq!(endpoints, subscribed);
    assert!(
        stack.subscriptions.iter().all(|s| s.raw_message_delivery),
        "a wrapped delivery is refused by every consumer"
    );
}

#[test]
fn a_consumer_queue_takes_messages_only_from_the_topic_or_the_redrive_role() {
    let (template, stack) = project();
    for subscription in &stack.subscriptions {
        let statements = policy(&template, &format!("{}Policy", subscription.queue));
        let send = denies(&statements, "sqs:SendMessage");
        let condition = &send
            .first()
            .unwrap_or_else(|| panic!("{} denies no sender", subscription.queue))["Condition"]["ArnNotEquals"];
        assert_eq!(
            target_of(&condition["aws:SourceArn"]),
            Some(("DomainEventsTopic".into(), REF.into()))
        );
        assert_eq!(
            target_of(&condition["aws:PrincipalArn"]),
            Some(("DlqRedriveRole".into(), "Arn".into()))
        );
    }
}

#[test]
fn every_alarm_notifies_the_ops_topic() {
    let (template, _) = project();
    let alarms: Vec<&Resource> = template
        .resources()
        .filter(|r| r.resource_type == "AWS::CloudWatch::Alarm")
        .collect();
    assert!(alarms.len() >= 5 + 2 * 7 + 4, "{} alarms", alarms.len());
    for alarm in alarms {
        let actions = alarm.properties()["AlarmActions"].as_sequence();
        assert!(
            actions.is_some_and(|a| a
                .iter()
                .any(|t| target_of(t) == Some(("OpsTopic".into(), REF.into())))),
            "{} has no action",
            alarm.logical_id
        );
    }
    let watched = |metric: &str| {
        template
            .resources()
            .any(|r| r.properties()["MetricName"] == metric)
    };
    for metric in ["IteratorAge", "Errors", "Throttles", "5xx"] {
        assert!(watched(metric), "no alarm on {metric}");
    }
    // What the outbox quarantines lands in its queue, whose alarm is above.
    assert!(template.resource("PublisherFailuresAlarm").is_some());
}

#[test]
fn every_log_group_is_encrypted_with_the_stack_key() {
    let (template, stack) = project();
    let groups: Vec<&Resource> = template
        .resources()
        .filter(|r| r.resource_type == "AWS::Logs::LogGroup")
        .collect();
    assert_eq!(
        groups.len(),
        stack.functions.len() + 1,
        "functions and API access"
    );
    for group in groups {
        assert_eq!(
            target_of(&group.properties()["KmsKeyId"]),
            Some(("RippleKey".into(), "Arn".into())),
            "{}",
            group.logical_id
        );
    }
    let api = template.resource("HttpApi").unwrap();
    assert_eq!(
        target_of(&api.properties()["AccessLogSettings"]["DestinationArn"]),
        Some(("ApiAccessLogGroup".into(), "Arn".into()))
    );
}

#[test]
fn every_queue_mapping_caps_its_concurrency_and_the_event_store_cannot_be_deleted() {
    let (template, stack) = project();
    for function in &stack.functions {
        let declared = template.resource(&function.logical_id).unwrap();
        for event in &function.events {
            let EventSource::Sqs(source) = event else {
                continue;
            };
            let cap = &declared.properties()["Events"][source.name.as_str()]["Properties"]["ScalingConfig"]
                ["MaximumConcurrency"];
            let cap = cap
                .as_u64()
                .unwrap_or_else(|| panic!("{} is uncapped", source.name));
            assert!((2..=10).contains(&cap), "{}: {cap}", source.name);
        }
    }
    let events = template.resource("EventsTable").unwrap();
    assert_eq!(events.properties()["DeletionProtectionEnabled"], true);
}

#[test]
fn every_control_a_function_leaves_out_says_why() {
    let (template, stack) = project();
    for function in &stack.functions {
        let metadata = &template.resource(&function.logical_id).unwrap().metadata;
        let skipped = metadata["checkov"]["skip"].as_sequence().unwrap();
        let ids: BTreeSet<String> = skipped.iter().flat_map(|s| strings(&s["id"])).collect();
        for expected in ["CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117", "CKV_AWS_173"] {
            assert!(
                ids.contains(expected),
                "{}: {expected}",
                function.logical_id
            );
        }
        for entry in skipped.iter().chain(
            metadata["cfn_nag"]["rules_to_suppress"]
                .as_sequence()
                .unwrap(),
        ) {
            let reason = entry["comment"].as_str().or(entry["reason"].as_str());
            assert!(
                reason.is_some_and(|r| r.len() > 20),
                "{}: {entry:?} has no reason",
                function.logical_id
            );
        }
    }
}
