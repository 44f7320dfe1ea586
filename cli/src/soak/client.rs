//! The soak's API client: a careful customer who retries, as real clients do, with the same
//! token, `Idempotency-Key` and body, until the API answers for good.
//!
//! A 5xx, a 409 "in progress" or no answer at all is retried with a growing pause; any other answer
//! ends the request. What the API answered each order is kept for the report, but the invariants
//! read what happened from the store, not from these answers.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Attempts before a request is given up.
const MAX_ATTEMPTS: u32 = 40;

/// What the API finally answered one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The last status (0: no answer).
    pub status: u16,
    /// The last body.
    pub body: Value,
    /// How many times it was sent.
    pub attempts: u32,
    /// The status of every attempt, in order.
    pub statuses: Vec<u16>,
}

impl Answer {
    /// No answer: the request was never sent.
    pub fn none() -> Self {
        Answer {
            status: 0,
            body: Value::Null,
            attempts: 0,
            statuses: Vec::new(),
        }
    }

    /// The order id the answer names, if any.
    pub fn order_id(&self) -> Option<&str> {
        self.body["order_id"].as_str()
    }
}

/// One request as the client sends (and resends) it.
struct Request<'a> {
    path: &'a str,
    /// The caller's access token.
    token: &'a str,
    idempotency_key: Option<&'a str>,
    body: &'a Value,
}

/// A client of the local HTTP API.
#[derive(Clone)]
pub struct ApiClient {
    base: String,
    http: Client<HttpConnector, Full<Bytes>>,
    pause: Duration,
}

impl ApiClient {
    /// A client of the API at `base` (`http://127.0.0.1:<port>`), pausing `pause`, then twice as
    /// long, and so on (at most 16 times `pause`) between attempts.
    pub fn new(base: &str, pause: Duration) -> Self {
        ApiClient {
            base: base.trim_end_matches('/').to_owned(),
            http: Client::builder(TokioExecutor::new()).build_http(),
            pause,
        }
    }

    /// `POST /orders` with `body` under `idempotency_key` as the customer of `token`, retried
    /// until answered for good.
    pub async fn place(&self, token: &str, body: &Value, idempotency_key: &str) -> Answer {
        let request = Request {
            path: "/orders",
            token,
            idempotency_key: Some(idempotency_key),
            body,
        };
        self.send(&request).await
    }

    /// `POST /orders/{id}/cancel` as the customer of `token`, retried until answered for good.
    pub async fn cancel(&self, token: &str, order_id: &str) -> Answer {
        let path = format!("/orders/{order_id}/cancel");
        let request = Request {
            path: &path,
            token,
            idempotency_key: None,
            body: &Value::Null,
        };
        self.send(&request).await
    }

    async fn send(&self, request: &Request<'_>) -> Answer {
        let mut answer = Answer::none();
        while answer.attempts < MAX_ATTEMPTS {
            if answer.attempts > 0 {
                let doublings = (answer.attempts - 1).min(4);
                tokio::time::sleep(self.pause * (1 << doublings)).await;
            }
            answer.attempts += 1;
            let (status, reply) = self.post_once(request).await;
            answer.status = status;
            answer.body = reply;
            answer.statuses.push(status);
            if !retried(status) {
                break;
            }
        }
        answer
    }

    async fn post_once(&self, request: &Request<'_>) -> (u16, Value) {
        let mut http = hyper::Request::post(format!("{}{}", self.base, request.path))
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", request.token),
            )
            .header(
                hyper::header::USER_AGENT,
                concat!("ripple-soak/", env!("CARGO_PKG_VERSION")),
            );
        if let Some(key) = request.idempotency_key {
            http = http.header("idempotency-key", key);
        }
        let text = if request.body.is_null() {
            String::new()
        } else {
            request.body.to_string()
        };
        let Ok(request) = http.body(Full::new(Bytes::from(text))) else {
            return (0, Value::Null);
        };
        match self.http.request(request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                let bytes = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                (
                    status,
                    serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                )
            }
            Err(err) => {
                tracing::debug!(error = %ripple_kit::telemetry::error_chain(&err), "request failed; retrying");
                (0, Value::Null)
            }
        }
    }
}

/// Whether a careful client sends the request again after this answer: no answer, a throttle or
/// a server error. (A retry under the same `Idempotency-Key` lands on the order placed first.)
pub fn retried(status: u16) -> bool {
    status == 0 || status == 429 || status >= 500
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_silence_are_retried_and_answers_are_not() {
        for status in [0, 500, 502, 503, 504, 429] {
            assert!(retried(status), "{status}");
        }
        for status in [200, 201, 202, 400, 404, 409, 415, 422] {
            assert!(!retried(status), "{status}");
        }
    }
}
