//! The template reader on small templates of its own: intrinsics, conditions, names, the model
//! of each resource type, and the errors that say where a template is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::*;

fn pseudo() -> PseudoParameters {
    PseudoParameters::new("shop", "eu-west-1").with_account_id("123456789012")
}

fn resolver(template: &Template) -> Resolver<'_> {
    template.resolver(pseudo())
}

fn yaml(text: &str) -> Yaml {
    serde_norway::from_str(text).unwrap()
}

const QUEUES: &str = r#"
Parameters:
  Retries:
    Type: Number
    Default: 4
Resources:
  Dlq:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work-dlq"
  Work:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-work"
      VisibilityTimeout: 30
      RedrivePolicy:
        deadLetterTargetArn: !GetAtt Dlq.Arn
        maxReceiveCount: !Ref Retries
  Unnamed:
    Type: AWS::SQS::Queue
    Properties:
      FifoQueue: true
  Key:
    Type: AWS::KMS::Key
    Properties:
      KeyPolicy: {}
"#;

#[test]
fn ref_returns_what_cloudformation_returns_for_each_type() {
    let template = Template::parse(QUEUES).unwrap();
    let r = resolver(&template);
    assert_eq!(
        r.reference("Work").unwrap(),
        "https://sqs.eu-west-1.amazonaws.com/123456789012/shop-work"
    );
    assert_eq!(
        r.attribute("Work", "Arn").unwrap(),
        "arn:aws:sqs:eu-west-1:123456789012:shop-work"
    );
    assert_eq!(r.attribute("Work", "QueueName").unwrap(), "shop-work");
    assert_eq!(r.reference("Retries").unwrap(), "4");
    assert_eq!(r.reference("AWS::Region").unwrap(), "eu-west-1");
}

#[test]
fn unnamed_resources_get_a_stack_scoped_name_and_fifo_suffix() {
    let template = Template::parse(QUEUES).unwrap();
    let stack = template.stack(pseudo()).unwrap();
    let unnamed = stack.queue("Unnamed").unwrap();
    assert_eq!(unnamed.name, "shop-Unnamed.fifo");
    assert!(unnamed.fifo);
}

#[test]
fn known_values_replace_predictions() {
    let template = Template::parse(QUEUES).unwrap();
    let mut r = resolver(&template);
    r.know("Work", REF, "http://127.0.0.1:4566/000000000000/shop-work");
    r.know(
        "Work",
        "Arn",
        "arn:aws:sqs:us-east-1:000000000000:shop-work",
    );
    assert_eq!(
        r.reference("Work").unwrap(),
        "http://127.0.0.1:4566/000000000000/shop-work"
    );
    let sub = yaml(r#"!Sub "queue ${Work} arn ${Work.Arn}""#);
    assert_eq!(
        r.resolve(&sub).unwrap(),
        Json::String(
            "queue http://127.0.0.1:4566/000000000000/shop-work arn arn:aws:sqs:us-east-1:000000000000:shop-work"
                .into()
        )
    );
}

#[test]
fn queues_model_redrive_and_come_dead_letter_queue_first() {
    let template = Template::parse(QUEUES).unwrap();
    let stack = template.stack(pseudo()).unwrap();
    let work = stack.queue("Work").unwrap();
    assert_eq!(work.visibility_timeout, Some(30));
    assert_eq!(
        work.redrive,
        Some(Redrive {
            dead_letter_queue: "Dlq".into(),
            max_receive_count: 4
        })
    );
    let order: Vec<_> = stack
        .queues_dlq_first()
        .iter()
        .map(|q| q.logical_id.as_str())
        .collect();
    let dlq = order.iter().position(|id| *id == "Dlq").unwrap();
    let work = order.iter().position(|id| *id == "Work").unwrap();
    assert!(dlq < work, "{order:?}");
    assert!(stack.is_dead_letter_queue("Dlq"));
    assert!(!stack.is_dead_letter_queue("Work"));
    assert_eq!(stack.ignored.len(), 1);
    assert_eq!(stack.ignored[0].resource_type, "AWS::KMS::Key");
}

#[test]
fn sub_handles_pseudo_parameters_attributes_literals_and_the_list_form() {
    let template = Template::parse(QUEUES).unwrap();
    let r = resolver(&template);
    let cases = [
        (
            r#"!Sub "${AWS::StackName}-${AWS::Region}-${AWS::AccountId}""#,
            "shop-eu-west-1-123456789012",
        ),
        (
            r#"!Sub "arn:${AWS::Partition}:x:${Work.QueueName}""#,
            "arn:aws:x:shop-work",
        ),
        (r#"!Sub "${!NotAVariable} ${Retries}""#, "${NotAVariable} 4"),
        (
            r#"!Sub ["${Name}-x", {Name: !GetAtt Dlq.QueueName}]"#,
            "shop-work-dlq-x",
        ),
        (r#"{"Fn::Sub": "${AWS::URLSuffix}"}"#, "amazonaws.com"),
    ];
    for (input, expected) in cases {
        assert_eq!(
            r.resolve(&yaml(input)).unwrap(),
            Json::String(expected.into()),
            "{input}"
        );
    }
}

#[test]
fn get_att_long_form_and_join() {
    let template = Template::parse(QUEUES).unwrap();
    let r = resolver(&template);
    let value =
        yaml(r#"{"Fn::Join": [",", [{"Fn::GetAtt": [Work, Arn]}, !GetAtt Dlq.QueueName]]}"#);
    assert_eq!(
        r.resolve(&value).unwrap(),
        Json::String("arn:aws:sqs:eu-west-1:123456789012:shop-work,shop-work-dlq".into())
    );
}

#[test]
fn split_and_select_take_a_name_out_of_an_arn() {
    let template = Template::parse(QUEUES).unwrap();
    let r = resolver(&template);
    let value = yaml(r#"!Select [5, !Split [":", !GetAtt Work.Arn]]"#);
    assert_eq!(r.resolve(&value).unwrap(), Json::String("shop-work".into()));
    assert!(r.resolve(&yaml(r#"!Split ["", "a"]"#)).is_err());
}

#[test]
fn errors_name_the_place_and_the_problem() {
    let template = Template::parse(QUEUES).unwrap();
    let r = resolver(&template);
    let err = r.resolve(&yaml("!Ref Nope")).unwrap_err();
    assert!(matches!(err, TemplateError::UnknownReference { ref name, .. } if name == "Nope"));
    let err = r.resolve(&yaml("!GetAtt Key.Arn")).unwrap_err();
    assert!(
        matches!(err, TemplateError::UnknownAttribute { .. }),
        "{err}"
    );
    let err = r.resolve(&yaml("!ImportValue shared-vpc")).unwrap_err();
    assert!(
        matches!(err, TemplateError::Unsupported { ref function, .. } if function == "Fn::ImportValue")
    );
    let err = r.resolve(&yaml("!FindInMap [a, b, c]")).unwrap_err();
    assert!(err.to_string().contains("Mappings has no a.b.c"), "{err}");
    assert!(matches!(
        Template::parse("Resources: [").unwrap_err(),
        TemplateError::Yaml(_)
    ));
    assert!(matches!(
        Template::parse("Description: nothing").unwrap_err(),
        TemplateError::Invalid { .. }
    ));
}

const LOOPED: &str = r#"
Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]
Mappings:
  Consumers:
    Billing: {Name: billing, Retries: 3}
    OrderSaga: {Name: order-saga}
Resources:
  Fn::ForEach::Consumers:
    - Consumer
    - [Billing, OrderSaga]
    - ${Consumer}DLQ:
        Type: AWS::SQS::Queue
        Properties:
          QueueName: !Sub ["${AWS::StackName}-${Name}-dlq", {Name: !FindInMap [Consumers, !Ref Consumer, Name]}]
      ${Consumer}Queue:
        Type: AWS::SQS::Queue
        Properties:
          QueueName: !Sub ["${AWS::StackName}-${Name}", {Name: !FindInMap [Consumers, !Ref Consumer, Name]}]
          RedrivePolicy:
            deadLetterTargetArn: !GetAtt [!Sub "${Consumer}DLQ", Arn]
            maxReceiveCount: !FindInMap [Consumers, !Ref Consumer, Retries, {DefaultValue: 5}]
Outputs:
  Fn::ForEach::Urls:
    - Consumer
    - [Billing, OrderSaga]
    - ${Consumer}QueueUrl:
        Value: !GetAtt [!Sub "${Consumer}Queue", QueueUrl]
"#;

#[test]
fn for_each_loops_expand_into_the_resources_and_outputs_they_stand_for() {
    let template = Template::parse(LOOPED).unwrap();
    let stack = template.stack(pseudo()).unwrap();
    let saga = stack.queue("OrderSagaQueue").unwrap();
    assert_eq!(saga.name, "shop-order-saga");
    assert_eq!(
        saga.redrive,
        Some(Redrive {
            dead_letter_queue: "OrderSagaDLQ".into(),
            max_receive_count: 5
        }),
        "the mapping has no Retries for OrderSaga: the default applies"
    );
    assert_eq!(
        stack
            .queue("BillingQueue")
            .unwrap()
            .redrive
            .as_ref()
            .unwrap()
            .max_receive_count,
        3
    );
    assert_eq!(stack.queue("BillingDLQ").unwrap().name, "shop-billing-dlq");
    let outputs: Vec<_> = template.outputs().map(|(name, _)| name).collect();
    assert_eq!(outputs, ["BillingQueueUrl", "OrderSagaQueueUrl"]);
    let (_, url) = template.outputs().next().unwrap();
    assert_eq!(
        resolver(&template).resolve(&url["Value"]).unwrap(),
        "https://sqs.eu-west-1.amazonaws.com/123456789012/shop-billing"
    );
}

#[test]
fn for_each_without_the_language_extensions_transform_is_an_error() {
    let without = LOOPED.replace("AWS::LanguageExtensions, ", "");
    let err = Template::parse(&without).unwrap_err();
    assert!(err.to_string().contains("AWS::LanguageExtensions"), "{err}");
}

#[test]
fn a_self_referencing_name_is_reported_not_looped() {
    let template = Template::parse(
        "Resources:\n  T:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: !Sub \"${T.TopicName}\"\n",
    )
    .unwrap();
    assert!(matches!(
        template.stack(pseudo()).unwrap_err(),
        TemplateError::TooDeep { .. }
    ));
}

const SYSTEM: &str = r#"
Globals:
  Function:
    Timeout: 10
    MemorySize: 256
    Environment:
      Variables:
        RUST_LOG: info
        SHARED: from-globals
Conditions:
  IsFifo: !Equals [!Ref Ordering, fifo]
Parameters:
  Ordering:
    Type: String
    Default: standard
Resources:
  Events:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "${AWS::StackName}-events"
      BillingMode: PAY_PER_REQUEST
      AttributeDefinitions:
        - {AttributeName: pk, AttributeType: S}
        - {AttributeName: sk, AttributeType: N}
        - {AttributeName: gsi1pk, AttributeType: S}
      KeySchema:
        - {AttributeName: pk, KeyType: HASH}
        - {AttributeName: sk, KeyType: RANGE}
      GlobalSecondaryIndexes:
        - IndexName: by-type
          KeySchema: [{AttributeName: gsi1pk, KeyType: HASH}]
          Projection: {ProjectionType: KEYS_ONLY}
      StreamSpecification: {StreamViewType: NEW_IMAGE}
      SSESpecification: {SSEEnabled: true, KMSMasterKeyId: !GetAtt Key.Arn}
      TimeToLiveSpecification: {AttributeName: expires_at, Enabled: true}
  Key:
    Type: AWS::KMS::Key
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !If [IsFifo, !Sub "${AWS::StackName}-t.fifo", !Sub "${AWS::StackName}-t"]
      FifoTopic: !If [IsFifo, true, !Ref AWS::NoValue]
  Queue:
    Type: AWS::SQS::Queue
    Properties:
      QueueName: !Sub "${AWS::StackName}-q"
  Failures:
    Type: AWS::SQS::Queue
  Sub:
    Type: AWS::SNS::Subscription
    Properties:
      Protocol: sqs
      TopicArn: !Ref Topic
      Endpoint: !GetAtt Queue.Arn
      RawMessageDelivery: true
      FilterPolicyScope: MessageAttributes
      FilterPolicy:
        type: [order.placed]
  Mail:
    Type: AWS::SNS::Subscription
    Properties:
      Protocol: email
      TopicArn: !Ref Topic
      Endpoint: someone@example.com
  Api:
    Type: AWS::Serverless::HttpApi
  ApiFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: orders-api}
    Properties:
      Timeout: 5
      Environment:
        Variables:
          EVENTS_TABLE: !Ref Events
          SHARED: own
      Events:
        Place:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: post, Path: /orders}
        Get:
          Type: HttpApi
          Properties: {ApiId: !Ref Api, Method: GET, Path: "/orders/{id}"}
  Publisher:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: outbox-publisher}
    Properties:
      Environment:
        Variables:
          TOPIC_ARN: !Ref Topic
          STREAM: !GetAtt Events.StreamArn
      Events:
        Stream:
          Type: DynamoDB
          Properties:
            Stream: !GetAtt Events.StreamArn
            StartingPosition: TRIM_HORIZON
            MaximumRetryAttempts: 3
            FunctionResponseTypes: [ReportBatchItemFailures]
            FilterCriteria:
              Filters:
                - Pattern: '{"eventName": ["INSERT"]}'
            DestinationConfig:
              OnFailure: {Type: SQS, Destination: !GetAtt Failures.Arn}
        Nightly:
          Type: Schedule
          Properties: {Schedule: rate(1 day)}
  Consumer:
    Type: AWS::Serverless::Function
    Metadata:
      BuildProperties: {Binary: inventory}
    Properties:
      Events:
        Q:
          Type: SQS
          Properties:
            Queue: !GetAtt Queue.Arn
            FunctionResponseTypes: [ReportBatchItemFailures]
        Off:
          Type: SQS
          Properties: {Queue: !GetAtt Queue.Arn, Enabled: false}
"#;

#[test]
fn tables_carry_keys_indexes_stream_and_ttl() {
    let template = Template::parse(SYSTEM).unwrap();
    let stack = template.stack(pseudo()).unwrap();
    let table = stack.table("Events").unwrap();
    assert_eq!(table.name, "shop-events");
    assert_eq!(table.key_schema.len(), 2);
    assert_eq!(table.key_schema[1].key_type, "RANGE");
    assert_eq!(table.attribute_definitions[1].attribute_type, "N");
    assert_eq!(table.global_secondary_indexes[0].index_name, "by-type");
    assert_eq!(
        table.global_secondary_indexes[0].projection_type,
        "KEYS_ONLY"
    );
    assert_eq!(table.stream_view_type.as_deref(), Some("NEW_IMAGE"));
    assert_eq!(table.ttl_attribute.as_deref(), Some("expires_at"));
}

#[test]
fn conditions_and_parameters_choose_the_variant() {
    let template = Template::parse(SYSTEM).unwrap();
    let standard = template.stack(pseudo()).unwrap();
    assert_eq!(standard.topic("Topic").unwrap().name, "shop-t");
    assert!(!standard.topic("Topic").unwrap().fifo);
    let fifo = template
        .resolver(pseudo())
        .with_parameter("Ordering", "fifo")
        .stack()
        .unwrap();
    assert_eq!(fifo.topic("Topic").unwrap().name, "shop-t.fifo");
    assert!(fifo.topic("Topic").unwrap().fifo);
}

#[test]
fn subscriptions_to_queues_are_modelled_others_ignored() {
    let template = Template::parse(SYSTEM).unwrap();
    let stack = template.stack(pseudo()).unwrap();
    assert_eq!(stack.subscriptions.len(), 1);
    let sub = &stack.subscriptions[0];
    assert_eq!((sub.topic.as_str(), sub.queue.as_str()), ("Topic", "Queue"));
    assert!(sub.raw_message_delivery);
    assert_eq!(
        sub.filter_policy,
        Some(serde_json::json!({"type": ["order.placed"]}))
    );
    assert_eq!(
        sub.filter_policy_scope.as_deref(),
        Some("MessageAttributes")
    );
    assert!(stack.ignored.iter().any(|i| i.logical_id == "Mail"));
}

#[test]
fn functions_merge_globals_and_model_their_events() {
    let template = Template::parse(SYSTEM).unwrap();
    let stack = template.stack(pseudo()).unwrap();

    let api = stack.function("ApiFunction").unwrap();
    assert_eq!(api.binary, "orders-api");
    assert_eq!(api.timeout, Duration::from_secs(5));
    assert_eq!(api.memory_size, 256);
    let env = template.resolver(pseudo()).environment(api).unwrap();
    assert_eq!(env["EVENTS_TABLE"], "shop-events");
    assert_eq!(env["SHARED"], "own");
    assert_eq!(env["RUST_LOG"], "info");
    let routes: Vec<_> = api
        .events
        .iter()
        .filter_map(|e| match e {
            EventSource::HttpApi(route) => Some(route.route_key()),
            _ => None,
        })
        .collect();
    assert_eq!(routes, ["POST /orders", "GET /orders/{id}"]);

    let publisher = stack.function("Publisher").unwrap();
    assert_eq!(publisher.timeout, Duration::from_secs(10));
    let stream = publisher
        .events
        .iter()
        .find_map(|e| match e {
            EventSource::DynamoDb(s) => Some(s),
            _ => None,
        })
        .unwrap();
    assert_eq!(stream.table, "Events");
    assert_eq!(stream.starting_position, StartingPosition::TrimHorizon);
    assert_eq!(stream.batch_size, 100);
    assert_eq!(stream.maximum_retry_attempts, Some(3));
    assert!(stream.report_batch_item_failures);
    assert_eq!(
        stream.filters,
        [serde_json::json!({"eventName": ["INSERT"]})]
    );
    assert_eq!(stream.on_failure.as_deref(), Some("Failures"));
    assert!(publisher.events.iter().any(|e| matches!(
        e,
        EventSource::Schedule(s) if s.name == "Nightly" && s.every == Duration::from_secs(86_400)
    )));

    let consumer = stack.function("Consumer").unwrap();
    assert_eq!(consumer.events.len(), 1, "a disabled mapping is left out");
    let EventSource::Sqs(sqs) = &consumer.events[0] else {
        panic!("expected an SQS source");
    };
    assert_eq!((sqs.queue.as_str(), sqs.batch_size), ("Queue", 10));
    assert!(sqs.report_batch_item_failures);
}

#[test]
fn stream_arns_are_known_only_after_provisioning() {
    let template = Template::parse(SYSTEM).unwrap();
    let stack = template.stack(pseudo()).unwrap();
    let publisher = stack.function("Publisher").unwrap();
    let mut r = template.resolver(pseudo());
    assert!(matches!(
        r.environment(publisher).unwrap_err(),
        TemplateError::NotYetKnown { .. }
    ));
    r.know(
        "Events",
        "StreamArn",
        "arn:aws:dynamodb:ddblocal:000000000000:table/shop-events/stream/x",
    );
    r.know("Topic", REF, "arn:aws:sns:us-east-1:123456789012:shop-t");
    let env = r.environment(publisher).unwrap();
    assert_eq!(
        env["TOPIC_ARN"],
        "arn:aws:sns:us-east-1:123456789012:shop-t"
    );
    assert!(env["STREAM"].ends_with("/stream/x"));
}

#[test]
fn a_function_without_a_binary_name_is_an_error() {
    let template = Template::parse(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Properties: {Handler: bootstrap}\n",
    )
    .unwrap();
    let err = template.stack(pseudo()).unwrap_err();
    assert!(err.to_string().contains("BuildProperties.Binary"), "{err}");
}

#[test]
fn references_to_missing_resources_are_errors() {
    let template = Template::parse(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: x}}\n    Properties:\n      Events:\n        Q: {Type: SQS, Properties: {Queue: !GetAtt Gone.Arn}}\n",
    )
    .unwrap();
    let err = template.stack(pseudo()).unwrap_err();
    assert!(err.to_string().contains("Gone"), "{err}");
}

#[test]
fn stack_names_follow_cloudformation_rules() {
    assert!(validate_stack_name("ripple-dev-x1").is_ok());
    for bad in ["", "1abc", "a_b", "a.b", &"a".repeat(129)] {
        assert!(validate_stack_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn api_ids_look_like_api_gateway_ids() {
    let id = api_id("shop", "HttpApi");
    assert_eq!(id.len(), 10);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    );
    assert_eq!(id, api_id("shop", "HttpApi"));
    assert_ne!(id, api_id("shop2", "HttpApi"));
}
