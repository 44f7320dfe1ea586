//! The payload-format 2.0 event a route's function receives, and the HTTP response API Gateway
//! writes for what the function returns (or for its failure).

use std::collections::BTreeMap;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{Value, json};

use super::routes::percent_decode;
use crate::runtime::InvokeError;

const STAGE: &str = "$default";

/// An HTTP request as it reached the server.
#[derive(Debug, Clone, Default)]
pub struct IncomingRequest {
    /// Method.
    pub method: String,
    /// Raw (percent-encoded) path.
    pub path: String,
    /// Raw query string, without `?`.
    pub query: String,
    /// Headers in arrival order.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Bytes,
    /// Client address.
    pub source_ip: String,
    /// `HTTP/1.1`.
    pub protocol: String,
}

/// Where the request arrived, as the event's request context names it.
#[derive(Debug, Clone)]
pub struct ApiContext {
    /// API id.
    pub api_id: String,
    /// Account id.
    pub account_id: String,
    /// `Host` the server answers on.
    pub domain_name: String,
}

/// The API Gateway HTTP API (payload format 2.0) event for a request.
pub fn request_event(
    request: &IncomingRequest,
    route_key: &str,
    path_parameters: &BTreeMap<String, String>,
    api: &ApiContext,
) -> Value {
    let (headers, cookies) = headers_and_cookies(&request.headers);
    let query = query_parameters(&request.query);
    let now = chrono::Utc::now();
    let domain_prefix = api
        .domain_name
        .split('.')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut event = json!({
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": api.account_id,
            "apiId": api.api_id,
            "domainName": api.domain_name,
            "domainPrefix": domain_prefix,
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": request.protocol,
                "sourceIp": request.source_ip,
                "userAgent": headers.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route_key,
            "stage": STAGE,
            "time": now.format("%d/%b/%Y:%H:%M:%S %z").to_string(),
            "timeEpoch": now.timestamp_millis(),
        },
        "isBase64Encoded": false,
    });
    let fields = event.as_object_mut();
    if let Some(fields) = fields {
        if !cookies.is_empty() {
            fields.insert("cookies".into(), json!(cookies));
        }
        if !query.is_empty() {
            fields.insert("queryStringParameters".into(), json!(query));
        }
        if !path_parameters.is_empty() {
            fields.insert("pathParameters".into(), json!(path_parameters));
        }
        if !request.body.is_empty() {
            match std::str::from_utf8(&request.body) {
                Ok(text) => {
                    fields.insert("body".into(), json!(text));
                }
                Err(_) => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&request.body);
                    fields.insert("body".into(), json!(encoded));
                    fields.insert("isBase64Encoded".into(), json!(true));
                }
            }
        }
    }
    event
}

/// Lower-cased headers, repeated ones joined with commas, and the cookies, which HTTP APIs move
/// out of the headers into a list of their own.
fn headers_and_cookies(raw: &[(String, String)]) -> (BTreeMap<String, String>, Vec<String>) {
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in raw {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        headers
            .entry(name)
            .and_modify(|v| {
                v.push(',');
                v.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    (headers, cookies)
}

/// The query string's parameters, decoded, repeated ones joined with commas.
fn query_parameters(query: &str) -> BTreeMap<String, String> {
    let mut parameters: BTreeMap<String, String> = BTreeMap::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        parameters
            .entry(percent_decode(key))
            .and_modify(|v| {
                v.push(',');
                v.push_str(&percent_decode(value));
            })
            .or_insert_with(|| percent_decode(value));
    }
    parameters
}

/// An HTTP response to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingResponse {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl OutgoingResponse {
    pub(super) fn json(status: u16, body: &Value) -> Self {
        OutgoingResponse {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }
}

/// The HTTP response API Gateway writes for a function's output (or failure).
pub fn response_from(output: Result<&Value, &InvokeError>) -> OutgoingResponse {
    let output = match output {
        Ok(output) => output,
        Err(_) => return OutgoingResponse::json(500, &json!({"message": "Internal Server Error"})),
    };
    let Some(status) = output.get("statusCode").and_then(Value::as_u64) else {
        // Without a statusCode, API Gateway takes the output as a JSON body with status 200.
        return OutgoingResponse::json(200, output);
    };
    let Ok(status) = u16::try_from(status) else {
        return OutgoingResponse::json(500, &json!({"message": "Internal Server Error"}));
    };
    let mut headers = Vec::new();
    if let Some(Value::Object(map)) = output.get("headers") {
        for (name, value) in map {
            match value {
                Value::String(v) => headers.push((name.clone(), v.clone())),
                Value::Null => {}
                other => headers.push((name.clone(), other.to_string())),
            }
        }
    }
    if let Some(Value::Object(map)) = output.get("multiValueHeaders") {
        for (name, values) in map {
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                continue;
            }
            for value in values
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
            {
                headers.push((name.clone(), value.to_owned()));
            }
        }
    }
    if let Some(Value::Array(cookies)) = output.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            headers.push(("set-cookie".into(), cookie.to_owned()));
        }
    }
    let text = output
        .get("body")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let body = if output.get("isBase64Encoded").and_then(Value::as_bool) == Some(true) {
        match base64::engine::general_purpose::STANDARD.decode(text) {
            Ok(bytes) => bytes,
            Err(_) => {
                return OutgoingResponse::json(500, &json!({"message": "Internal Server Error"}));
            }
        }
    } else {
        text.as_bytes().to_vec()
    };
    OutgoingResponse {
        status,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};

    fn api() -> ApiContext {
        ApiContext {
            api_id: "abc123defg".into(),
            account_id: "000000000000".into(),
            domain_name: "127.0.0.1:3000".into(),
        }
    }

    #[test]
    fn request_events_have_the_http_api_shape() {
        let request = IncomingRequest {
            method: "POST".into(),
            path: "/orders/o-1/cancel".into(),
            query: "a=1&b=x%20y&a=2".into(),
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("User-Agent".into(), "ripple".into()),
                ("X-Multi".into(), "1".into()),
                ("x-multi".into(), "2".into()),
                ("Cookie".into(), "s=1; t=2".into()),
            ],
            body: Bytes::from_static(br#"{"reason":"changed mind"}"#),
            source_ip: "127.0.0.1".into(),
            protocol: "HTTP/1.1".into(),
        };
        let params = BTreeMap::from([("id".to_owned(), "o-1".to_owned())]);
        let event = request_event(&request, "POST /orders/{id}/cancel", &params, &api());
        assert_eq!(event["version"], "2.0");
        assert_eq!(event["routeKey"], "POST /orders/{id}/cancel");
        assert_eq!(event["rawPath"], "/orders/o-1/cancel");
        assert_eq!(event["rawQueryString"], "a=1&b=x%20y&a=2");
        assert_eq!(event["headers"]["content-type"], "application/json");
        assert_eq!(event["headers"]["x-multi"], "1,2");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["cookies"], json!(["s=1", "t=2"]));
        assert_eq!(
            event["queryStringParameters"],
            json!({"a": "1,2", "b": "x y"})
        );
        assert_eq!(event["pathParameters"], json!({"id": "o-1"}));
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["http"]["sourceIp"], "127.0.0.1");
        assert_eq!(event["requestContext"]["http"]["userAgent"], "ripple");
        assert_eq!(event["requestContext"]["stage"], "$default");
        assert_eq!(event["body"], r#"{"reason":"changed mind"}"#);
        assert_eq!(event["isBase64Encoded"], false);

        // The handler's own type reads it.
        let typed: ApiGatewayV2httpRequest = serde_json::from_value(event).unwrap();
        assert_eq!(typed.request_context.http.method, http::Method::POST);
        assert_eq!(typed.path_parameters["id"], "o-1");
        assert_eq!(typed.headers["content-type"], "application/json");
        assert_eq!(typed.raw_path.as_deref(), Some("/orders/o-1/cancel"));
        assert_eq!(
            typed.request_context.route_key.as_deref(),
            Some("POST /orders/{id}/cancel")
        );
    }

    #[test]
    fn binary_bodies_are_base64_and_absent_parts_are_left_out() {
        let request = IncomingRequest {
            method: "GET".into(),
            path: "/x".into(),
            body: Bytes::from_static(&[0xff, 0x00]),
            ..IncomingRequest::default()
        };
        let event = request_event(&request, "GET /x", &BTreeMap::new(), &api());
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "/wA=");
        assert!(event.get("queryStringParameters").is_none());
        assert!(event.get("pathParameters").is_none());
        let empty = IncomingRequest {
            method: "GET".into(),
            path: "/x".into(),
            ..IncomingRequest::default()
        };
        assert!(
            request_event(&empty, "GET /x", &BTreeMap::new(), &api())
                .get("body")
                .is_none()
        );
    }

    #[test]
    fn responses_are_written_as_api_gateway_writes_them() {
        let mut typed = ApiGatewayV2httpResponse::default();
        typed.status_code = 201;
        typed.headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/json"),
        );
        typed
            .headers
            .insert("location", http::HeaderValue::from_static("/orders/1"));
        typed.body = Some(aws_lambda_events::encodings::Body::Text(
            r#"{"ok":true}"#.into(),
        ));
        typed.cookies = vec!["a=1".into()];
        let value = serde_json::to_value(&typed).unwrap();
        let response = response_from(Ok(&value));
        assert_eq!(response.status, 201);
        assert!(
            response
                .headers
                .contains(&("location".into(), "/orders/1".into()))
        );
        assert!(
            response
                .headers
                .contains(&("set-cookie".into(), "a=1".into()))
        );
        assert_eq!(response.body, br#"{"ok":true}"#);

        let inferred = response_from(Ok(&json!({"hello": "world"})));
        assert_eq!(inferred.status, 200);
        assert_eq!(inferred.body, br#"{"hello":"world"}"#);

        let binary = response_from(Ok(
            &json!({"statusCode": 200, "body": "/wA=", "isBase64Encoded": true}),
        ));
        assert_eq!(binary.body, [0xff, 0x00]);

        let err = InvokeError::TimedOut {
            function: "f".into(),
            timeout: std::time::Duration::from_secs(1),
        };
        let failed = response_from(Err(&err));
        assert_eq!(failed.status, 500);
        assert_eq!(failed.body, br#"{"message":"Internal Server Error"}"#);
    }
}
