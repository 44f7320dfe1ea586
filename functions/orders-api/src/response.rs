//! What the API answers: JSON responses, the errors clients see, and the request parts it reads
//! (body, headers, query parameters).

use aws_lambda_events::encodings::Body;
use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};
use base64::Engine;
use http::HeaderValue;
use http::header::CONTENT_TYPE;
use ripple_kit::StoreError;
use ripple_kit::store::Conflicting;
use serde_json::{Value, json};

use crate::identity::Unauthorized;

/// The largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A request the API refuses, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// What is wrong, for people.
    pub message: String,
    /// The offending field, when there is one.
    pub field: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub(crate) fn on(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    /// The same answer for an order that does not exist and for one of another customer, so
    /// that nobody learns which order ids exist.
    pub(crate) fn no_order(order_id: &str) -> Self {
        ApiError::new(404, "order_not_found", format!("no order {order_id}"))
    }

    pub(crate) fn body(&self) -> Value {
        let mut body = json!({"code": self.code, "message": self.message});
        if let Some(field) = &self.field {
            body["field"] = json!(field);
        }
        body
    }
}

impl From<domain::order::ValidationError> for ApiError {
    fn from(err: domain::order::ValidationError) -> Self {
        ApiError {
            status: 422,
            code: err.code,
            message: err.message,
            field: Some(err.field),
        }
    }
}

impl From<Unauthorized> for ApiError {
    fn from(err: Unauthorized) -> Self {
        match err {
            Unauthorized::Unauthenticated => ApiError::new(
                401,
                "unauthenticated",
                "no verified identity: call the API with a bearer token",
            ),
            Unauthorized::MissingScope(scope) => ApiError::new(
                403,
                "insufficient_scope",
                format!("the token does not grant {scope}"),
            ),
        }
    }
}

/// Why a request did not succeed.
pub(crate) enum Failure {
    Client(ApiError),
    Store(StoreError),
}

impl From<ApiError> for Failure {
    fn from(err: ApiError) -> Self {
        Failure::Client(err)
    }
}

impl From<Unauthorized> for Failure {
    fn from(err: Unauthorized) -> Self {
        Failure::Client(err.into())
    }
}

impl Conflicting for Failure {
    fn is_conflict(&self) -> bool {
        matches!(self, Failure::Store(e) if e.is_conflict())
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

pub(crate) fn header<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn query<'a>(request: &'a ApiGatewayV2httpRequest, name: &str) -> Option<&'a str> {
    request.query_string_parameters.first(name)
}

/// A whole-number query parameter within `min..=max`, or `default` when absent.
pub(crate) fn parse_bounded(
    value: Option<&str>,
    name: &str,
    min: u64,
    max: u64,
    default: u64,
) -> Result<u64, ApiError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::new(
                    400,
                    "invalid_query",
                    format!("{name} must be a whole number from {min} to {max}"),
                )
                .on(name)
            }),
    }
}

/// The request body as JSON: 413 when too large, 415 for another content type, 400 when it is
/// not JSON.
pub(crate) fn parse_json_body(request: &ApiGatewayV2httpRequest) -> Result<Value, ApiError> {
    if let Some(content_type) = header(request, CONTENT_TYPE.as_str())
        && !content_type
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("application/json")
    {
        return Err(ApiError::new(
            415,
            "unsupported_media_type",
            "send application/json",
        ));
    }
    let raw = request.body.as_deref().unwrap_or_default();
    let bytes = if request.is_base64_encoded {
        base64::engine::general_purpose::STANDARD
            .decode(raw)
            .map_err(|_| ApiError::new(400, "malformed_body", "body is not valid base64"))?
    } else {
        raw.as_bytes().to_vec()
    };
    if bytes.len() > MAX_BODY_BYTES {
        return Err(ApiError::new(
            413,
            "payload_too_large",
            format!(
                "body is {} bytes; the limit is {MAX_BODY_BYTES}",
                bytes.len()
            ),
        ));
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::new(400, "empty_body", "a JSON body is required"));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(400, "malformed_json", format!("body is not JSON: {e}")))
}

/// A JSON response.
pub(crate) fn json_response(status: u16, body: &Value) -> ApiGatewayV2httpResponse {
    let mut response = ApiGatewayV2httpResponse::default();
    response.status_code = i64::from(status);
    response
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response.body = Some(Body::Text(body.to_string()));
    response
}
