//! Service errors as each service puts them on the wire, so that an answer made in a service's
//! place parses, classifies and is retried exactly like the service's own:
//!
//! - DynamoDB (and its streams) speak awsJson1.0: the code is the `__type` of a JSON body
//!   (`namespace#Code`); a cancelled transaction lists one `CancellationReasons` entry per item.
//! - SQS speaks awsJson1.0 with query-compatible errors: the body's `__type`, and the header
//!   `x-amzn-query-error: Code;Sender|Receiver` carrying the older awsQuery code.
//! - SNS speaks awsQuery: an XML `ErrorResponse` with `Type`, `Code` and `Message`.
//!
//! The SDK retries throttling codes it knows (`ProvisionedThroughputExceededException`,
//! `ThrottlingException`, `Throttling`, `RequestThrottled`) and the statuses 500, 502, 503 and 504;
//! a cancelled transaction or a transaction conflict reaches the caller's own error handling.

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use serde_json::json;

use super::Service;

/// The namespace of DynamoDB's own error shapes.
const DYNAMODB_NAMESPACE: &str = "com.amazonaws.dynamodb.v20120810";
/// The namespace of the errors every Coral service shares (throttling, internal failures).
const CORAL_AVAILABILITY: &str = "com.amazon.coral.availability";
const SQS_NAMESPACE: &str = "com.amazonaws.sqs";

/// Why one item of a cancelled transaction failed (DynamoDB's `CancellationReason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancellationReason {
    /// `None` (this item was fine), `ThrottlingError`, `TransactionConflict`,
    /// `ConditionalCheckFailed`, ...
    pub code: &'static str,
    /// DynamoDB's message, when it gives one.
    pub message: Option<&'static str>,
}

/// A service error to put on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// HTTP status.
    pub status: u16,
    /// The error code, e.g. `ProvisionedThroughputExceededException`.
    pub code: &'static str,
    /// The namespace of the shape (`__type` is `<namespace>#<code>`); unused by awsQuery.
    pub namespace: &'static str,
    /// The message.
    pub message: &'static str,
    /// One reason per item of a cancelled transaction.
    pub cancellation_reasons: Vec<CancellationReason>,
}

impl WireError {
    fn new(
        status: u16,
        code: &'static str,
        namespace: &'static str,
        message: &'static str,
    ) -> Self {
        WireError {
            status,
            code,
            namespace,
            message,
            cancellation_reasons: Vec::new(),
        }
    }

    /// Who is at fault: `Sender` for 4xx, `Receiver` for 5xx (awsQuery's `Type`).
    pub fn fault(&self) -> &'static str {
        if self.status < 500 {
            "Sender"
        } else {
            "Receiver"
        }
    }

    /// The service's throttling error: the request was not applied; the SDK backs off and retries.
    pub fn throttled(service: Service) -> Self {
        match service {
            Service::DynamoDb | Service::DynamoDbStreams | Service::Other => WireError::new(
                400,
                "ProvisionedThroughputExceededException",
                DYNAMODB_NAMESPACE,
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API.",
            ),
            Service::Sqs => WireError::new(
                400,
                "RequestThrottled",
                SQS_NAMESPACE,
                "Request is throttled.",
            ),
            Service::Sns => WireError::new(400, "Throttling", "", "Rate exceeded"),
        }
    }

    /// DynamoDB's account-level throttle (on-demand tables past their rate).
    pub fn dynamodb_rate_exceeded() -> Self {
        WireError::new(
            400,
            "ThrottlingException",
            CORAL_AVAILABILITY,
            "Rate of requests exceeds the allowed throughput.",
        )
    }

    /// The service failed internally (500): nothing was applied; the SDK retries.
    pub fn internal(service: Service) -> Self {
        match service {
            Service::DynamoDb | Service::DynamoDbStreams | Service::Other => WireError::new(
                500,
                "InternalServerError",
                DYNAMODB_NAMESPACE,
                "Internal server error",
            ),
            Service::Sqs => WireError::new(
                500,
                "InternalFailure",
                "com.amazon.coral.service",
                "The request processing has failed because of an unknown error, exception or failure.",
            ),
            Service::Sns => WireError::new(500, "InternalError", "", "Internal Error"),
        }
    }

    /// The service is unavailable (503): nothing was applied; the SDK retries.
    pub fn unavailable(service: Service) -> Self {
        let namespace = match service {
            Service::Sns => "",
            _ => CORAL_AVAILABILITY,
        };
        WireError::new(
            503,
            "ServiceUnavailable",
            namespace,
            "Service is unavailable. Please try again later.",
        )
    }

    /// A `TransactWriteItems` of `items` items cancelled because item `at` was throttled
    /// (`ThrottlingError`): the SDK does not retry a cancelled transaction.
    pub fn transaction_throttled(items: usize, at: usize) -> Self {
        Self::transaction_cancelled(
            items,
            at,
            CancellationReason {
                code: "ThrottlingError",
                message: Some(
                    "Throughput exceeds the current capacity of your table or index. DynamoDB is \
                     automatically scaling your table or index so please try again shortly.",
                ),
            },
        )
    }

    /// A `TransactWriteItems` of `items` items cancelled because another transaction was
    /// writing item `at` at the same moment (`TransactionConflict`).
    pub fn transaction_conflicted(items: usize, at: usize) -> Self {
        Self::transaction_cancelled(
            items,
            at,
            CancellationReason {
                code: "TransactionConflict",
                message: Some("Transaction is ongoing for the item"),
            },
        )
    }

    fn transaction_cancelled(items: usize, at: usize, reason: CancellationReason) -> Self {
        let reasons: Vec<CancellationReason> = (0..items.max(1))
            .map(|i| {
                if i == at.min(items.max(1) - 1) {
                    reason.clone()
                } else {
                    CancellationReason {
                        code: "None",
                        message: None,
                    }
                }
            })
            .collect();
        WireError {
            cancellation_reasons: reasons,
            ..WireError::new(
                400,
                "TransactionCanceledException",
                DYNAMODB_NAMESPACE,
                "Transaction cancelled, please refer cancellation reasons for specific reasons",
            )
        }
    }

    /// A single-item write that met a transaction in progress on its item
    /// (`TransactionConflictException`; the SDK does not retry it).
    pub fn transaction_conflict() -> Self {
        WireError::new(
            400,
            "TransactionConflictException",
            DYNAMODB_NAMESPACE,
            "Transaction is ongoing for the item",
        )
    }
}

/// The HTTP answer `service` gives with `error`.
pub fn response(service: Service, error: &WireError) -> HttpResponse {
    let (content_type, body) = match service {
        Service::Sns => ("text/xml", query_body(error)),
        Service::DynamoDb | Service::DynamoDbStreams | Service::Sqs | Service::Other => {
            ("application/x-amz-json-1.0", json_body(error))
        }
    };
    let status = StatusCode::try_from(error.status)
        .unwrap_or_else(|_| StatusCode::from(http::StatusCode::INTERNAL_SERVER_ERROR));
    let mut response = HttpResponse::new(status, SdkBody::from(body));
    let headers = response.headers_mut();
    let request_id = uuid::Uuid::new_v4().to_string();
    let _ = headers.try_insert("content-type", content_type);
    let _ = headers.try_insert("x-amzn-requestid", request_id);
    if service == Service::Sqs {
        let _ = headers.try_insert(
            "x-amzn-query-error",
            format!("{};{}", error.code, error.fault()),
        );
    }
    response
}

/// awsJson1.0: `{"__type": "<namespace>#<code>", "message": ...}`; a cancelled transaction says
/// `Message` and lists its `CancellationReasons`, as DynamoDB does.
fn json_body(error: &WireError) -> String {
    let error_type = if error.namespace.is_empty() {
        error.code.to_owned()
    } else {
        format!("{}#{}", error.namespace, error.code)
    };
    if error.cancellation_reasons.is_empty() {
        return json!({"__type": error_type, "message": error.message}).to_string();
    }
    let codes: Vec<&str> = error.cancellation_reasons.iter().map(|r| r.code).collect();
    let reasons: Vec<serde_json::Value> = error
        .cancellation_reasons
        .iter()
        .map(|r| match r.message {
            Some(message) => json!({"Code": r.code, "Message": message}),
            None => json!({"Code": r.code}),
        })
        .collect();
    json!({
        "__type": error_type,
        "Message": format!("{} [{}]", error.message, codes.join(", ")),
        "CancellationReasons": reasons,
    })
    .to_string()
}

/// awsQuery: SNS's XML `ErrorResponse`.
fn query_body(error: &WireError) -> String {
    format!(
        "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error><Type>{}</Type>\
         <Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        error.fault(),
        error.code,
        error.message,
        uuid::Uuid::new_v4()
    )
}
