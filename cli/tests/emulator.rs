//! The local runner against the emulator: provisioning, SQS partial failures and redrive, the
//! stream's retry and on-failure semantics, and the HTTP API, each on its own small template and
//! a unique stack name. A missing emulator is a failure that says how to get one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::event::dynamodb::Event;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::LambdaEvent;
use ripple::provision::cloudformation::{CfnResource, CfnStack};
use ripple::provision::{self, Clients, Deployment};
use ripple::runtime::{Invoke, RunOptions, Runtime, invoke_fn, sqs};
use ripple::template::Template;
use serde_json::{Value, json};

fn stack_name(test: &str) -> String {
    support::stack_name("rt", test)
}

async fn start(
    aws: &aws_config::SdkConfig,
    deployment: &Deployment,
    handlers: Vec<(&str, Invoke)>,
) -> Runtime {
    let handlers: HashMap<String, Invoke> = handlers
        .into_iter()
        .map(|(id, h)| (id.to_owned(), h))
        .collect();
    Runtime::start(
        &Clients::new(aws),
        deployment,
        handlers,
        RunOptions::default(),
    )
    .await
    .unwrap()
}

const QUEUE_TEMPLATE: &str = r#"
Resources:
  Dlq:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work-dlq"
  Work:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work"
      VisibilityTimeout: 1
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: 2
  Worker:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: worker
    Properties:
      Timeout: 5
      Environment:
        Variables:
          QUEUE_URL: !Ref Work
          QUEUE_ARN: !GetAtt Work.Arn
      Events:
        Queue:
          Type: SQS
          Properties:
            Queue: !GetAtt Work.Arn
            BatchSize: 10
            FunctionResponseTypes: [ReportBatchItemFailures]
"#;

#[tokio::test]
async fn a_poison_message_fails_alone_and_is_redriven_to_the_dlq() {
    let aws = support::emulator().await;
    let template = Template::parse(QUEUE_TEMPLATE).unwrap();
    let deployment = provision::provision(&aws, &template, &stack_name("sqs"))
        .await
        .unwrap();
    let work = deployment.queue("Work").unwrap().clone();
    let dlq = deployment.queue("Dlq").unwrap().clone();
    assert!(dlq.dead_letter && !work.dead_letter);
    // The environment carries what the services returned, not made-up values.
    let env = &deployment.function("Worker").unwrap().environment;
    assert_eq!(env["QUEUE_URL"], work.url);
    assert_eq!(env["QUEUE_ARN"], work.arn);
    assert_eq!(
        env["AWS_LAMBDA_FUNCTION_NAME"],
        deployment.function("Worker").unwrap().name
    );

    let seen: Arc<Mutex<Vec<(String, String, String)>>> = Arc::default();
    let log = seen.clone();
    let handler = invoke_fn(move |event: LambdaEvent<SqsEvent>| {
        let log = log.clone();
        async move {
            let mut response = SqsBatchResponse::default();
            for record in event.payload.records {
                let body = record.body.clone().unwrap_or_default();
                let count = record
                    .attributes
                    .get("ApproximateReceiveCount")
                    .cloned()
                    .unwrap_or_default();
                log.lock().unwrap().push((
                    body.clone(),
                    count,
                    record.event_source_arn.clone().unwrap_or_default(),
                ));
                if body == "poison" {
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = record.message_id.unwrap_or_default();
                    response.batch_item_failures.push(failure);
                }
            }
            Ok::<_, lambda_runtime::Error>(response)
        }
    });
    let runtime = start(&aws, &deployment, vec![("Worker", handler)]).await;
    let clients = Clients::new(&aws);
    for body in ["one", "poison", "two"] {
        clients
            .sqs
            .send_message()
            .queue_url(&work.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    let quiet = runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await;
    let stats = runtime.stats().function("Worker").unwrap().snapshot();
    runtime.stop().await;
    let dlq_depth = sqs::visible(&clients.sqs, &dlq.url).await.unwrap();
    provision::teardown(&aws, &deployment).await.unwrap();
    quiet.unwrap();

    assert_eq!(stats.sqs_succeeded, 2, "{stats:?}");
    assert_eq!(
        stats.sqs_failed, 2,
        "two receives of the poison message: {stats:?}"
    );
    assert_eq!(
        dlq_depth, 1,
        "after maxReceiveCount the queue moves it to the DLQ"
    );
    let seen = seen.lock().unwrap();
    let poison: Vec<_> = seen
        .iter()
        .filter(|(b, _, _)| b == "poison")
        .map(|(_, c, _)| c.as_str())
        .collect();
    assert_eq!(poison, ["1", "2"]);
    assert!(seen.iter().all(|(_, _, arn)| *arn == work.arn));
}

const STREAM_TEMPLATE: &str = r#"
Resources:
  Events:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-events"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions: [{AttributeName: pk, AttributeType: S}]
      KeySchema: [{AttributeName: pk, KeyType: HASH}]
      StreamSpecification: {StreamViewType: NEW_IMAGE}
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
  Failures:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-failures"
  Publisher:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: publisher
    Properties:
      Timeout: 5
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Events.StreamArn
            StartingPosition: TRIM_HORIZON
            BatchSize: 10
            MaximumRetryAttempts: 2
            FunctionResponseTypes: [ReportBatchItemFailures]
            FilterCriteria:
              Filters:
                - Pattern: '{"eventName": ["INSERT"], "dynamodb": {"NewImage": {"kind": {"S": ["event"]}}}}'
            DestinationConfig:
              OnFailure:
                Type: SQS
                Destination: !GetAtt Failures.Arn
"#;

async fn put(clients: &Clients, table: &str, pk: &str, kind: &str) {
    clients
        .dynamodb
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.into()))
        .item("kind", AttributeValue::S(kind.into()))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_stream_record_is_retried_then_sent_to_the_on_failure_destination() {
    let aws = support::emulator().await;
    let template = Template::parse(STREAM_TEMPLATE).unwrap();
    let deployment = provision::provision(&aws, &template, &stack_name("stream"))
        .await
        .unwrap();
    let table = deployment.table("Events").unwrap().name.clone();
    assert!(deployment.table("Events").unwrap().stream_arn.is_some());
    let clients = Clients::new(&aws);
    // Written before the mapping starts: TRIM_HORIZON hands them over in one batch.
    put(&clients, &table, "skip-me", "dedupe").await;
    for pk in ["a1", "a2", "bad", "a3"] {
        put(&clients, &table, pk, "event").await;
    }

    let handled: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = handled.clone();
    let handler = invoke_fn(move |event: LambdaEvent<Event>| {
        let log = log.clone();
        async move {
            let mut response = DynamoDbEventResponse::default();
            for record in event.payload.records {
                let pk = match record.change.keys.get("pk") {
                    Some(serde_dynamo::AttributeValue::S(pk)) => pk.clone(),
                    other => panic!("no pk: {other:?}"),
                };
                assert_eq!(record.event_source.as_deref(), Some("aws:dynamodb"));
                if pk == "bad" {
                    let mut failure = DynamoDbBatchItemFailure::default();
                    failure.item_identifier = record.change.sequence_number.clone();
                    response.batch_item_failures.push(failure);
                    break;
                }
                log.lock().unwrap().push(pk);
            }
            Ok::<_, lambda_runtime::Error>(response)
        }
    });
    let runtime = start(&aws, &deployment, vec![("Publisher", handler)]).await;
    let first = runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await;
    put(&clients, &table, "a4", "event").await;
    let second = runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await;
    let stats = runtime.stats().function("Publisher").unwrap().snapshot();
    runtime.stop().await;
    let failures_url = deployment.queue("Failures").unwrap().url.clone();
    let received = clients
        .sqs
        .receive_message()
        .queue_url(&failures_url)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    provision::teardown(&aws, &deployment).await.unwrap();
    first.unwrap();
    second.unwrap();

    // Records before the failure are handled once; the failed one and the rest of its batch are
    // given up after 1 + 2 attempts; the shard moves on.
    assert_eq!(*handled.lock().unwrap(), ["a1", "a2", "a4"]);
    assert_eq!(stats.stream_filtered, 1, "{stats:?}");
    assert_eq!(stats.stream_retries, 2, "{stats:?}");
    assert_eq!(stats.stream_discarded, 2, "{stats:?}");
    assert_eq!(stats.stream_succeeded, 3, "{stats:?}");
    assert_eq!(stats.invocations, 4, "{stats:?}");
    let messages = received.messages();
    assert_eq!(messages.len(), 1);
    let record: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(
        record["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(record["DDBStreamBatchInfo"]["batchSize"], 2);
    assert_eq!(
        record["DDBStreamBatchInfo"]["streamArn"],
        json!(deployment.table("Events").unwrap().stream_arn)
    );
}

#[tokio::test]
async fn a_stream_mapping_that_never_discards_bisects_and_retries_until_the_record_passes() {
    let aws = support::emulator().await;
    let never = STREAM_TEMPLATE.replace(
        "MaximumRetryAttempts: 2",
        "MaximumRetryAttempts: -1\n            MaximumRecordAgeInSeconds: -1\n            BisectBatchOnFunctionError: true",
    );
    let template = Template::parse(&never).unwrap();
    let deployment = provision::provision(&aws, &template, &stack_name("never"))
        .await
        .unwrap();
    let source = match &deployment.function("Publisher").unwrap().events[0] {
        ripple::template::EventSource::DynamoDb(source) => source.clone(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        (source.maximum_retry_attempts, source.maximum_record_age),
        (None, None)
    );
    assert!(source.bisect_on_function_error);
    let table = deployment.table("Events").unwrap().name.clone();
    let clients = Clients::new(&aws);
    for pk in ["a1", "a2", "bad", "a3"] {
        put(&clients, &table, pk, "event").await;
    }

    // A batch holding "bad" fails as a whole (an invocation error) for its first five tries.
    let batches: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let log = batches.clone();
    let handler = invoke_fn(move |event: LambdaEvent<Event>| {
        let log = log.clone();
        async move {
            let pks: Vec<String> = event
                .payload
                .records
                .iter()
                .filter_map(|r| match r.change.keys.get("pk") {
                    Some(serde_dynamo::AttributeValue::S(pk)) => Some(pk.clone()),
                    _ => None,
                })
                .collect();
            let mut log = log.lock().unwrap();
            let tries = log.iter().filter(|b| b.contains(&"bad".to_owned())).count();
            log.push(pks.clone());
            if pks.contains(&"bad".to_owned()) && tries < 5 {
                return Err::<DynamoDbEventResponse, lambda_runtime::Error>("down".into());
            }
            Ok(DynamoDbEventResponse::default())
        }
    });
    let runtime = start(&aws, &deployment, vec![("Publisher", handler)]).await;
    let quiet = runtime
        .wait_until_quiet(Duration::from_secs(60), |_, _| {})
        .await;
    let stats = runtime.stats().function("Publisher").unwrap().snapshot();
    runtime.stop().await;
    provision::teardown(&aws, &deployment).await.unwrap();
    quiet.unwrap();

    let batches = batches.lock().unwrap().clone();
    fn as_strs(batch: &[String]) -> Vec<&str> {
        batch.iter().map(String::as_str).collect()
    }
    // Halved until the failing record is alone, then retried alone until it passed.
    assert_eq!(as_strs(&batches[0]), ["a1", "a2", "bad", "a3"]);
    assert_eq!(as_strs(&batches[1]), ["a1", "a2"]);
    assert_eq!(as_strs(&batches[2]), ["bad", "a3"]);
    assert!(
        batches[3..].iter().take(3).all(|b| as_strs(b) == ["bad"]),
        "{batches:?}"
    );
    assert_eq!(stats.stream_discarded, 0, "nothing given up: {stats:?}");
    assert_eq!(stats.stream_succeeded, 4, "{stats:?}");
}

const API_TEMPLATE: &str = r#"
Resources:
  Api:
    Type: AWS::Serverless::HttpApi
  Items:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties:
        Binary: items
    Properties:
      Timeout: 2
      Events:
        Get:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: "/items/{id}"}
        Put:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: POST, Path: /items}
        Slow:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: /slow}
"#;

#[tokio::test]
async fn the_http_api_routes_requests_and_writes_responses() {
    use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
    use http_body_util::{BodyExt as _, Full};

    let aws = support::emulator().await;
    let template = Template::parse(API_TEMPLATE).unwrap();
    let deployment = provision::provision(&aws, &template, &stack_name("http"))
        .await
        .unwrap();
    let arn = deployment.function("Items").unwrap().arn.clone();
    let handler = invoke_fn(|event: LambdaEvent<ApiGatewayV2httpRequest>| async move {
        let request = event.payload;
        if request.raw_path.as_deref() == Some("/slow") {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let mut response = ApiGatewayV2httpResponse::default();
        response.status_code = 200;
        response.headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        response.body = Some(aws_lambda_events::encodings::Body::Text(
            json!({
                "route": request.route_key,
                "id": request.path_parameters.get("id"),
                "q": request.query_string_parameters.first("q"),
                "body": request.body,
                "function": event.context.invoked_function_arn,
                "has_deadline": event.context.deadline > 0,
            })
            .to_string(),
        ));
        Ok::<_, lambda_runtime::Error>(response)
    });
    let runtime = start(&aws, &deployment, vec![("Items", handler)]).await;
    let base = runtime.http_url().unwrap();
    let client: hyper_util::client::legacy::Client<_, Full<bytes::Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let call = |method: &str, path: &str, body: &str| {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{base}{path}"))
            .body(Full::new(bytes::Bytes::from(body.to_owned())))
            .unwrap();
        let client = client.clone();
        async move {
            let response = client.request(request).await.unwrap();
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.unwrap().to_bytes();
            (
                status,
                serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null),
            )
        }
    };

    let get = call("GET", "/items/i-7?q=x", "").await;
    let post = call("POST", "/items", r#"{"a":1}"#).await;
    let unrouted = call("DELETE", "/items/1", "").await;
    let slow = call("GET", "/slow", "").await;
    let stats = runtime.stats().snapshot();
    runtime.stop().await;
    provision::teardown(&aws, &deployment).await.unwrap();

    let (status, body) = get;
    assert_eq!(status, 200);
    assert_eq!(body["route"], "GET /items/{id}");
    assert_eq!(body["id"], "i-7");
    assert_eq!(body["q"], "x");
    assert_eq!(body["function"], arn);
    assert_eq!(body["has_deadline"], true);
    assert_eq!((post.0, post.1["body"].as_str()), (200, Some(r#"{"a":1}"#)));
    assert_eq!(unrouted, (404, json!({"message": "Not Found"})));
    assert_eq!(
        slow.0, 500,
        "a timed-out function is a 500, as API Gateway reports it"
    );
    assert_eq!(stats.http_requests, 4);
    assert_eq!(stats.http_unmatched, 1);
    assert_eq!(stats.functions["Items"].errors, 1);
}

#[tokio::test]
async fn provisioning_is_idempotent_and_teardown_removes_everything() {
    let aws = support::emulator().await;
    let template =
        Template::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let name = stack_name("idem");
    let first = provision::provision(&aws, &template, &name).await.unwrap();
    let second = provision::provision(&aws, &template, &name).await;
    provision::teardown(&aws, &first).await.unwrap();
    provision::teardown(&aws, &first).await.unwrap();
    let second = second.unwrap();
    assert_eq!(first.tables, second.tables);
    assert_eq!(first.topics, second.topics);
    assert_eq!(first.queues, second.queues);
    assert_eq!(first.subscriptions, second.subscriptions);
    let clients = Clients::new(&aws);
    let left = clients
        .sqs
        .list_queues()
        .queue_name_prefix(&name)
        .send()
        .await
        .unwrap();
    assert!(left.queue_urls().is_empty(), "{:?}", left.queue_urls());
}

#[tokio::test]
async fn the_project_template_provisions_and_tears_down() {
    let aws = support::emulator().await;
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
    let template = Template::from_file(path).unwrap();
    let deployment = provision::provision(&aws, &template, &stack_name("full"))
        .await
        .unwrap();
    let handlers = ripple::functions::handlers(&deployment, &aws).map(|h| h.len());
    let clients = Clients::new(&aws);
    let inventory_url = deployment.queue("InventoryQueue").unwrap().url.clone();
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&inventory_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
        .send()
        .await;
    let subscription = &deployment.subscriptions["InventorySubscription"].arn;
    let subscription = clients
        .sns
        .get_subscription_attributes()
        .subscription_arn(subscription)
        .send()
        .await;
    provision::teardown(&aws, &deployment).await.unwrap();

    // SNS keeps what it cannot deliver in the subscription's own DLQ.
    let subscription = subscription.unwrap();
    let redrive: Value = serde_json::from_str(
        subscription
            .attributes()
            .and_then(|a| a.get("RedrivePolicy"))
            .expect("the subscription has a RedrivePolicy"),
    )
    .unwrap();
    let delivery_dlq = deployment.queue("InventorySubscriptionDLQ").unwrap();
    assert_eq!(redrive["deadLetterTargetArn"], delivery_dlq.arn);
    assert!(
        delivery_dlq.dead_letter,
        "counted with the dead-letter queues"
    );

    assert_eq!(handlers.unwrap(), deployment.functions.len());
    assert!(
        deployment
            .table("EventsTable")
            .unwrap()
            .stream_arn
            .is_some()
    );
    assert_eq!(
        deployment
            .dead_letter_queue_of("InventoryQueue")
            .map(|q| q.logical_id.as_str()),
        Some("InventoryDLQ")
    );
    let attributes = attributes.unwrap();
    let policy: Value = serde_json::from_str(
        attributes
            .attributes()
            .unwrap()
            .get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        policy["deadLetterTargetArn"],
        deployment.queue("InventoryDLQ").unwrap().arn
    );
}

#[tokio::test]
async fn a_provisioned_stack_is_found_as_it_was_created_and_a_missing_one_is_named() {
    let aws = support::emulator().await;
    let template =
        Template::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    let name = stack_name("lookup");
    let created = provision::provision(&aws, &template, &name).await.unwrap();
    let found = provision::lookup(&aws, &template, &name).await;
    provision::teardown(&aws, &created).await.unwrap();
    let gone = provision::lookup(&aws, &template, &name).await;

    let json = |d: &Deployment| serde_json::to_value(d).unwrap();
    assert_eq!(json(&found.unwrap()), json(&created));
    match gone {
        Err(provision::ProvisionError::NotProvisioned { stack, resource }) => {
            assert_eq!(stack, name);
            assert!(resource.contains(&name), "{resource}");
        }
        other => panic!("a deleted stack is not provisioned: {other:?}"),
    }
}

/// What CloudFormation would list for `deployment`'s resources had it made them: each table by
/// name, queue by URL, topic and subscription by ARN, function by a generated name.
fn as_cloudformation_lists(deployment: &Deployment, stack_name: &str) -> CfnStack {
    let resource = |kind: &str, physical: &str| CfnResource {
        resource_type: kind.to_owned(),
        physical_id: physical.to_owned(),
    };
    let mut resources = std::collections::BTreeMap::new();
    for t in deployment.tables.values() {
        resources.insert(
            t.logical_id.clone(),
            resource("AWS::DynamoDB::Table", &t.name),
        );
    }
    for q in deployment.queues.values() {
        resources.insert(q.logical_id.clone(), resource("AWS::SQS::Queue", &q.url));
    }
    for t in deployment.topics.values() {
        resources.insert(t.logical_id.clone(), resource("AWS::SNS::Topic", &t.arn));
    }
    for s in deployment.subscriptions.values() {
        resources.insert(
            s.logical_id.clone(),
            resource("AWS::SNS::Subscription", &s.arn),
        );
    }
    for f in deployment.functions.values() {
        let generated = format!("{stack_name}-{}-Xk3J9aQ2", f.logical_id);
        resources.insert(
            f.logical_id.clone(),
            resource("AWS::Lambda::Function", &generated),
        );
    }
    CfnStack {
        name: stack_name.to_owned(),
        stack_id: format!(
            "arn:aws:cloudformation:{}:111122223333:stack/{stack_name}/6b1c2d30-0000-11ef-9a4e-0a1b2c3d4e5f",
            deployment.region
        ),
        status: "UPDATE_COMPLETE".to_owned(),
        parameters: [("OrderDeadlineSeconds".to_owned(), "600".to_owned())].into(),
        outputs: [(
            "ApiUrl".to_owned(),
            "https://abc.execute-api.example/".to_owned(),
        )]
        .into(),
        resources,
    }
}

#[tokio::test]
async fn a_deployed_stack_is_found_under_the_physical_ids_cloudformation_lists() {
    let aws = support::emulator().await;
    let clients = Clients::new(&aws);
    let template =
        Template::from_file(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml")).unwrap();
    // The resources exist under one stack's names; CloudFormation (here: what it would list)
    // knows them as another stack's, so only its physical ids can lead to them.
    let made = stack_name("made");
    let created = provision::provision(&aws, &template, &made).await.unwrap();
    let deployed = stack_name("cfn");
    let resolve = async |cfn: &CfnStack| {
        let pseudo = provision::pseudo(&aws, &deployed);
        provision::lookup_deployed(&clients, &template, pseudo, cfn).await
    };
    let mut cfn = as_cloudformation_lists(&created, &deployed);
    let found = resolve(&cfn).await;
    cfn.resources.remove("InventoryDLQ");
    let incomplete = resolve(&cfn).await;
    cfn.status = "ROLLBACK_COMPLETE".to_owned();
    let rolled_back = resolve(&cfn).await;
    let by_names = provision::lookup(&aws, &template, &deployed).await;
    provision::teardown(&aws, &created).await.unwrap();

    let found = found.unwrap();
    assert_eq!(found.stack_name, deployed);
    assert!(
        matches!(found.origin, provision::Origin::CloudFormation { ref status, .. } if status == "UPDATE_COMPLETE")
    );
    assert_eq!(found.tables, created.tables);
    assert_eq!(found.queues, created.queues);
    assert_eq!(found.topics, created.topics);
    assert_eq!(found.subscriptions, created.subscriptions);
    let api = found.function("OrdersApiFunction").unwrap();
    assert_eq!(api.name, format!("{deployed}-OrdersApiFunction-Xk3J9aQ2"));
    assert_eq!(
        api.arn,
        format!(
            "arn:aws:lambda:{}:111122223333:function:{deployed}-OrdersApiFunction-Xk3J9aQ2",
            found.region
        )
    );
    assert_eq!(api.environment["AWS_LAMBDA_FUNCTION_NAME"], api.name);
    assert_eq!(
        api.environment["EVENTS_TABLE"],
        created.table("EventsTable").unwrap().name,
        "the environment names what CloudFormation made"
    );
    let sweeper = found.function_by_binary("sweeper").unwrap();
    assert_eq!(
        sweeper.environment["ORDER_DEADLINE_SECONDS"], "600",
        "resolved with the parameters the stack was deployed with"
    );
    match incomplete {
        Err(provision::ProvisionError::NotProvisioned { stack, resource }) => {
            assert_eq!(stack, deployed);
            assert!(
                resource.contains("InventoryDLQ") && resource.contains("CloudFormation"),
                "{resource}"
            );
        }
        other => panic!("a resource CloudFormation does not list is missing: {other:?}"),
    }
    assert!(
        matches!(rolled_back, Err(provision::ProvisionError::NotUsable { ref status, .. }) if status == "ROLLBACK_COMPLETE"),
        "{rolled_back:?}"
    );
    assert!(
        matches!(
            by_names,
            Err(provision::ProvisionError::NotProvisioned { .. })
        ),
        "without CloudFormation in the emulator the runner's names are looked for, and there are none: {by_names:?}"
    );
}
