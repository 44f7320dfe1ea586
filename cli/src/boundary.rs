//! The AWS SDK's HTTP boundary: a client around the real one that sees every request an SDK
//! client sends and lets a [`Hook`] decide what becomes of it.
//!
//! It sits where the SDK hands a signed request to the network, so everything above it is the
//! real thing: the SDK's error parsing, retry classifiers, backoff and retry quota, and the
//! adapters that turn service errors into domain errors. A hook that answers in a service's place
//! answers in that service's wire protocol ([`wire`]), so the SDK cannot tell it from the service.
//!
//! `ripple soak` injects its SDK faults with a hook ([`crate::soak`]); a request or cost counter is
//! a hook that forwards everything and counts in [`Hook::after`] (each [`Call`] knows its
//! service, operation, function and size).

pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use serde::Serialize;
use serde_json::Value;

pub use wire::WireError;

/// The AWS service a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// DynamoDB (awsJson1.0).
    DynamoDb,
    /// DynamoDB Streams (awsJson1.0, signed as `dynamodb`).
    DynamoDbStreams,
    /// SNS (awsQuery: form-encoded requests, XML answers).
    Sns,
    /// SQS (awsJson1.0, query-compatible errors).
    Sqs,
    /// Anything else (STS, say): always forwarded.
    Other,
}

impl Service {
    /// The name used in figures and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::DynamoDb => "dynamodb",
            Service::DynamoDbStreams => "dynamodbstreams",
            Service::Sns => "sns",
            Service::Sqs => "sqs",
            Service::Other => "other",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request as the boundary sees it: who sent it, to which service and operation, and its body.
#[derive(Debug, Clone)]
pub struct Call {
    /// The function (or tool) whose clients sent it, as given to [`with_hook`].
    pub caller: Arc<str>,
    /// The service.
    pub service: Service,
    /// The operation, e.g. `TransactWriteItems`, `PublishBatch`.
    pub operation: String,
    /// The request body (JSON or form-encoded; all of these are small).
    pub body: Vec<u8>,
}

/// Operations that change something: the ones whose answer can be lost after they were applied.
const WRITES: &[&str] = &[
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "TransactWriteItems",
    "BatchWriteItem",
    "Publish",
    "PublishBatch",
    "SendMessage",
    "SendMessageBatch",
    "DeleteMessage",
    "DeleteMessageBatch",
    "ChangeMessageVisibility",
    "ChangeMessageVisibilityBatch",
];

impl Call {
    /// Reads service and operation from a signed request: the credential scope of its
    /// `Authorization` header names the service, `X-Amz-Target` (JSON protocols) or the form's
    /// `Action` (awsQuery) the operation.
    pub fn of(caller: Arc<str>, request: &HttpRequest) -> Call {
        let body = request
            .body()
            .bytes()
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let scope = request
            .headers()
            .get("authorization")
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|credential| credential.split('/').nth(3))
            .unwrap_or_default();
        let (target_prefix, target_operation) = target.split_once('.').unwrap_or(("", target));
        let service = match (scope, target_prefix) {
            (_, "DynamoDBStreams_20120810") => Service::DynamoDbStreams,
            ("dynamodb", _) | (_, "DynamoDB_20120810") => Service::DynamoDb,
            ("sqs", _) | (_, "AmazonSQS") => Service::Sqs,
            ("sns", _) => Service::Sns,
            _ => Service::Other,
        };
        let operation = if target_operation.is_empty() {
            form_value(&body, "Action").unwrap_or_default()
        } else {
            target_operation.to_owned()
        };
        Call {
            caller,
            service,
            operation,
            body,
        }
    }

    /// True for an operation that changes something.
    pub fn is_write(&self) -> bool {
        WRITES.contains(&self.operation.as_str())
    }

    /// Request bytes.
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// The body as JSON (JSON protocols), if it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// Items of a `TransactWriteItems` request (the number of cancellation reasons DynamoDB
    /// answers with); 0 for anything else.
    pub fn transaction_items(&self) -> usize {
        if self.operation != "TransactWriteItems" {
            return 0;
        }
        self.json()
            .and_then(|body| {
                body.get("TransactItems")
                    .and_then(Value::as_array)
                    .map(Vec::len)
            })
            .unwrap_or(0)
    }

    /// What the request is about, as far as it says so cheaply: the table and key of a DynamoDB
    /// item (the first item of a transaction), the `:pk` of a query, or the topic or queue.
    pub fn subject(&self) -> String {
        match self.service {
            Service::DynamoDb => self.json().map(|body| dynamodb_subject(&body)),
            Service::Sns => form_value(&self.body, "TopicArn"),
            Service::Sqs => self.json().and_then(|body| {
                body.get("QueueUrl")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
            }),
            Service::DynamoDbStreams | Service::Other => None,
        }
        .unwrap_or_default()
    }
}

/// `table/key` of a DynamoDB request: the first string or number of the item or key (or of the
/// first item of a transaction), or the `:pk` value of a query.
fn dynamodb_subject(body: &Value) -> String {
    let first_of_transaction = body
        .get("TransactItems")
        .and_then(|items| items.get(0))
        .and_then(Value::as_object)
        .and_then(|item| item.values().next());
    let request = first_of_transaction.unwrap_or(body);
    let table = request
        .get("TableName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let item = request.get("Item").or_else(|| request.get("Key"));
    let key = item
        .and_then(|item| item.get("pk").or_else(|| item.get("id")))
        .or_else(|| {
            request
                .get("ExpressionAttributeValues")
                .and_then(|values| values.get(":pk"))
        })
        .and_then(|value| value.as_object()?.values().next()?.as_str());
    match key {
        Some(key) => format!("{table}/{key}"),
        None => table.to_owned(),
    }
}

/// One field of a form-encoded (awsQuery) body, decoded.
fn form_value(body: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    text.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| Some((hex_digit(*bytes.get(i + 1)?)? << 4) | hex_digit(*bytes.get(i + 2)?)?))
            .flatten();
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// How a connection fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broken {
    /// The connection was reset (an I/O error).
    Reset,
    /// No answer in time (a read timeout).
    TimedOut,
}

impl Broken {
    fn error(self) -> ConnectorError {
        match self {
            Broken::Reset => ConnectorError::io("connection reset by the fault plan".into()),
            Broken::TimedOut => ConnectorError::timeout("no answer in time (fault plan)".into()),
        }
    }
}

/// What becomes of one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it and return the service's answer.
    Forward,
    /// Answer in the service's place: the request never reaches it.
    Refuse(WireError),
    /// The connection breaks before anything is sent.
    Break(Broken),
    /// Send it, let the service apply it, and replace its answer with this error.
    LoseAnswer(WireError),
    /// Send it, let the service apply it, and break the connection before the answer arrives.
    LoseConnection(Broken),
    /// Send it and hold the answer this long (an invocation can run out of time meanwhile).
    Hold(Duration),
}

/// What the hook learns after a request: the status the SDK got, or that the connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// An HTTP answer with this status (the service's, or one made in its place).
    Status(u16),
    /// No answer: the connection failed.
    Failed,
}

/// Decides each request's fate, and sees how it ended.
pub trait Hook: Send + Sync + fmt::Debug + 'static {
    /// What becomes of `call`.
    fn before(&self, call: &Call) -> Verdict;

    /// How `call` ended, as the SDK sees it.
    fn after(&self, call: &Call, outcome: Outcome) {
        let _ = (call, outcome);
    }
}

/// `aws` with its HTTP client behind `hook`; `caller` names whose clients these are in every
/// [`Call`]. An `aws` without an HTTP client gets the kit's ([`ripple_kit::https::http_client`]).
pub fn with_hook(aws: &SdkConfig, caller: &str, hook: Arc<dyn Hook>) -> SdkConfig {
    let inner = aws
        .http_client()
        .unwrap_or_else(ripple_kit::https::http_client);
    aws.to_builder()
        .http_client(BoundaryClient {
            inner,
            hook,
            caller: Arc::from(caller),
        })
        .build()
}

/// The HTTP client at the boundary: the real one, behind a hook.
#[derive(Debug, Clone)]
pub struct BoundaryClient {
    inner: SharedHttpClient,
    hook: Arc<dyn Hook>,
    caller: Arc<str>,
}

impl HttpClient for BoundaryClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(BoundaryConnector {
            inner: self.inner.http_connector(settings, components),
            hook: self.hook.clone(),
            caller: self.caller.clone(),
        })
    }
}

#[derive(Debug)]
struct BoundaryConnector {
    inner: SharedHttpConnector,
    hook: Arc<dyn Hook>,
    caller: Arc<str>,
}

impl HttpConnector for BoundaryConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let call = Call::of(self.caller.clone(), &request);
        let verdict = self.hook.before(&call);
        let inner = self.inner.clone();
        let hook = self.hook.clone();
        HttpConnectorFuture::new(async move {
            let result = transmit(&inner, request, &call, verdict).await;
            let outcome = match &result {
                Ok(response) => Outcome::Status(response.status().as_u16()),
                Err(_) => Outcome::Failed,
            };
            hook.after(&call, outcome);
            result
        })
    }
}

async fn transmit(
    inner: &SharedHttpConnector,
    request: HttpRequest,
    call: &Call,
    verdict: Verdict,
) -> Result<HttpResponse, ConnectorError> {
    match verdict {
        Verdict::Forward => inner.call(request).await,
        Verdict::Refuse(error) => Ok(wire::response(call.service, &error)),
        Verdict::Break(broken) => Err(broken.error()),
        Verdict::LoseAnswer(error) => {
            inner.call(request).await?;
            Ok(wire::response(call.service, &error))
        }
        Verdict::LoseConnection(broken) => {
            inner.call(request).await?;
            Err(broken.error())
        }
        Verdict::Hold(duration) => {
            let response = inner.call(request).await;
            tokio::time::sleep(duration).await;
            response
        }
    }
}

#[cfg(test)]
mod tests;
