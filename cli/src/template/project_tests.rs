//! The project's own `template.yaml`, expanded as CloudFormation expands it: what the runner
//! needs is there, and the rules every consumer must follow hold for each of them (the rules
//! that keep messages from being lost or stranded are in `invariant_tests`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::json;

use super::*;

pub(super) fn project() -> (Template, Stack) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template = Template::from_file(path).unwrap();
    let stack = template
        .stack(PseudoParameters::new("t1", DEFAULT_REGION))
        .unwrap();
    (template, stack)
}

/// Every queue a function consumes, with that function.
fn consumer_queues(stack: &Stack) -> Vec<(&Queue, &Function)> {
    stack
        .functions
        .iter()
        .flat_map(|f| f.events.iter().map(move |e| (e, f)))
        .filter_map(|(event, function)| match event {
            EventSource::Sqs(source) => Some((stack.queue(&source.queue).unwrap(), function)),
            _ => None,
        })
        .collect()
}

/// The real template: every resource the runner needs is modelled and resolvable.
#[test]
fn the_project_template_models_the_whole_pipeline() {
    let (template, stack) = project();

    let events = stack.table("EventsTable").expect("EventsTable");
    assert_eq!(events.name, "t1-events");
    assert_eq!(events.stream_view_type.as_deref(), Some("NEW_IMAGE"));
    assert_eq!(events.ttl_attribute.as_deref(), Some("expires_at"));
    assert_eq!(
        stack.topic("DomainEventsTopic").unwrap().name,
        "t1-domain-events"
    );
    let inventory = stack.queue("InventoryQueue").unwrap();
    assert_eq!(inventory.name, "t1-inventory");
    assert_eq!(
        inventory
            .redrive
            .as_ref()
            .map(|r| r.dead_letter_queue.as_str()),
        Some("InventoryDLQ")
    );
    assert!(
        stack
            .subscriptions
            .iter()
            .any(|s| s.queue == "InventoryQueue")
    );

    let binaries: Vec<_> = stack.functions.iter().map(|f| f.binary.as_str()).collect();
    for binary in ["orders-api", "outbox-publisher", "inventory"] {
        assert!(
            binaries.contains(&binary),
            "{binary} missing from {binaries:?}"
        );
    }
    let publisher = stack
        .functions
        .iter()
        .find(|f| f.binary == "outbox-publisher")
        .unwrap();
    assert!(
        publisher
            .events
            .iter()
            .any(|e| matches!(e, EventSource::DynamoDb(s) if s.table == "EventsTable"))
    );

    // Every function's environment resolves once the stream ARN is known.
    let mut resolver = template.resolver(PseudoParameters::new("t1", DEFAULT_REGION));
    for table in &stack.tables {
        resolver.know(
            &table.logical_id,
            "StreamArn",
            "arn:aws:dynamodb:x:0:table/t/stream/l",
        );
    }
    for function in &stack.functions {
        resolver.environment(function).unwrap();
    }
}

#[test]
fn every_consumer_queue_redrives_to_a_dead_letter_queue_of_its_own() {
    let (_, stack) = project();
    let consumed = consumer_queues(&stack);
    assert_eq!(consumed.len(), 5, "the five saga consumers");
    let mut dead_letter_queues = BTreeSet::new();
    for (queue, function) in &consumed {
        let redrive = queue
            .redrive
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no RedrivePolicy", queue.logical_id));
        let dlq = &redrive.dead_letter_queue;
        assert_ne!(dlq, &queue.logical_id);
        assert!(
            stack.queue(dlq).unwrap().redrive.is_none(),
            "{dlq} redrives further"
        );
        assert!(
            consumed.iter().all(|(q, _)| &q.logical_id != dlq),
            "{dlq} is consumed by a function"
        );
        assert!(
            dead_letter_queues.insert(dlq.clone()),
            "{dlq} is shared ({} of {})",
            queue.logical_id,
            function.logical_id
        );
    }
}

#[test]
fn the_outputs_give_every_consumer_queue_and_dead_letter_queue_url() {
    let (template, stack) = project();
    let resolver = template.resolver(stack.pseudo.clone());
    let outputs: std::collections::BTreeMap<&str, &serde_norway::Value> =
        template.outputs().collect();
    for (queue, _) in consumer_queues(&stack) {
        let dlq = &queue.redrive.as_ref().unwrap().dead_letter_queue;
        for id in [&queue.logical_id, dlq] {
            let output = outputs
                .get(format!("{id}Url").as_str())
                .unwrap_or_else(|| panic!("no output {id}Url"));
            assert_eq!(
                resolver.resolve(&output["Value"]).unwrap(),
                json!(resolver.reference(id).unwrap())
            );
        }
    }
}

#[test]
fn every_entry_of_the_consumers_mapping_is_a_consumer_with_its_queue() {
    let (template, stack) = project();
    let consumers: BTreeSet<String> = template.mappings["Consumers"]
        .as_mapping()
        .unwrap()
        .keys()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    let queues: BTreeSet<String> = consumer_queues(&stack)
        .iter()
        .map(|(q, _)| q.logical_id.trim_end_matches("Queue").to_owned())
        .collect();
    assert_eq!(consumers, queues);
}

#[test]
fn ordering_fifo_makes_the_topic_and_every_consumer_queue_fifo_and_nothing_else() {
    let (template, standard) = project();
    let pseudo = PseudoParameters::new("t1", DEFAULT_REGION);
    let overrides = [("Ordering".to_owned(), "fifo".to_owned())];
    let fifo = template
        .resolver_with(pseudo, &overrides)
        .unwrap()
        .stack()
        .unwrap();
    let events = fifo.topic("DomainEventsTopic").unwrap();
    assert!(events.fifo && events.name.ends_with(".fifo"), "{events:?}");
    assert!(
        !fifo.topic("NotificationsTopic").unwrap().fifo,
        "email is not FIFO"
    );
    let consumers = [
        "Inventory",
        "Payments",
        "OrderSaga",
        "Projections",
        "Notifications",
    ];
    let mut fifo_queues = BTreeSet::new();
    for consumer in consumers {
        for kind in ["Queue", "DLQ", "SubscriptionDLQ"] {
            let logical_id = format!("{consumer}{kind}");
            let queue = fifo.queue(&logical_id).unwrap();
            assert!(queue.fifo && queue.name.ends_with(".fifo"), "{queue:?}");
            assert!(queue.name.len() <= 80, "{} is too long for SQS", queue.name);
            let before = standard.queue(&logical_id).unwrap();
            assert!(!before.fifo, "{logical_id} is FIFO by default");
            assert_eq!(queue.name, format!("{}.fifo", before.name));
            fifo_queues.insert(logical_id);
        }
    }
    for queue in fifo
        .queues
        .iter()
        .filter(|q| !fifo_queues.contains(&q.logical_id))
    {
        assert!(!queue.fifo, "{} is FIFO too", queue.logical_id);
    }
    assert!(!standard.topic("DomainEventsTopic").unwrap().fifo);
}

#[test]
fn a_parameter_override_the_template_does_not_accept_is_refused_saying_what_it_accepts() {
    let (template, _) = project();
    let pseudo = || PseudoParameters::new("t1", DEFAULT_REGION);
    let with = |name: &str, value: &str| {
        template
            .resolver_with(pseudo(), &[(name.to_owned(), value.to_owned())])
            .err()
            .map(|e| e.to_string())
    };
    let wrong = with("Ordering", "strict").unwrap();
    assert!(
        wrong.contains("Parameters.Ordering") && wrong.contains("standard, fifo"),
        "{wrong}"
    );
    let unknown = with("Orderin", "fifo").unwrap();
    assert!(
        unknown.contains("no such parameter") && unknown.contains("Ordering"),
        "{unknown}"
    );
    assert_eq!(with("Ordering", "standard"), None);
}
