//! The HTTP API: a local HTTP/1.1 server that routes requests as API Gateway HTTP APIs do and
//! invokes the route's function with a payload-format 2.0 event.
//!
//! Routes come from the template's `HttpApi` events. The most specific route wins (literal
//! segments over `{param}` over `{proxy+}`, an exact method over `ANY`, `$default` last), the
//! event carries the route key, raw path and query, lower-cased headers, cookies, path and query
//! parameters, and the function's response (or its failure) becomes the HTTP response exactly as
//! API Gateway would write it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use super::{InvokeError, LocalFunction, RuntimeError, Stats};
use crate::provision::Deployment;
use crate::template::{self, HttpRoute};

/// Lambda's synchronous payload limit.
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;
const STAGE: &str = "$default";

/// A route's path, split into what each segment must be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
    Greedy(String),
}

/// A route the server can match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePattern {
    /// Upper-case method or `ANY`.
    pub method: String,
    /// The route key (`POST /orders`, `$default`).
    pub route_key: String,
    segments: Vec<Segment>,
    default: bool,
}

impl RoutePattern {
    /// The pattern of a template route.
    pub fn new(route: &HttpRoute) -> Self {
        let default = route.path == "$default";
        let segments = if default {
            Vec::new()
        } else {
            route
                .path
                .trim_matches('/')
                .split('/')
                .filter(|s| !s.is_empty())
                .map(
                    |s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => match name.strip_suffix('+') {
                            Some(greedy) => Segment::Greedy(greedy.to_owned()),
                            None => Segment::Param(name.to_owned()),
                        },
                        None => Segment::Literal(s.to_owned()),
                    },
                )
                .collect()
        };
        RoutePattern {
            method: route.method.to_ascii_uppercase(),
            route_key: route.route_key(),
            segments,
            default,
        }
    }

    /// The path parameters if `method` and `path` (raw, percent-encoded) match.
    pub fn matches(&self, method: &str, path: &str) -> Option<BTreeMap<String, String>> {
        if self.method != "ANY" && !self.method.eq_ignore_ascii_case(method) {
            return None;
        }
        if self.default {
            return Some(BTreeMap::new());
        }
        let parts: Vec<&str> = path
            .trim_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut params = BTreeMap::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Literal(literal) => {
                    if parts.get(i).map(|p| percent_decode(p)) != Some(literal.clone()) {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    params.insert(name.clone(), percent_decode(parts.get(i)?));
                }
                Segment::Greedy(name) => {
                    let rest = parts.get(i..).filter(|r| !r.is_empty())?;
                    params.insert(name.clone(), percent_decode(&rest.join("/")));
                    return Some(params);
                }
            }
        }
        (parts.len() == self.segments.len()).then_some(params)
    }

    /// Higher is more specific.
    fn specificity(&self) -> (bool, usize, usize, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let bounded = self
            .segments
            .iter()
            .filter(|s| !matches!(s, Segment::Greedy(_)))
            .count();
        (!self.default, literals, bounded, self.method != "ANY")
    }
}

/// The most specific route matching a request: its index and path parameters.
pub fn find_route(
    patterns: &[RoutePattern],
    method: &str,
    path: &str,
) -> Option<(usize, BTreeMap<String, String>)> {
    patterns
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.matches(method, path).map(|params| (i, params)))
        .max_by_key(|(i, _)| patterns[*i].specificity())
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

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
    let mut headers: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in &request.headers {
        let name = name.to_ascii_lowercase();
        if name == "cookie" {
            // HTTP APIs move cookies out of the headers into their own list.
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
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for pair in request.query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        query
            .entry(percent_decode(key))
            .and_modify(|v| {
                v.push(',');
                v.push_str(&percent_decode(value));
            })
            .or_insert_with(|| percent_decode(value));
    }
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
    fn json(status: u16, body: &Value) -> Self {
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

/// The HTTP API of one deployment.
pub struct HttpApi {
    patterns: Vec<RoutePattern>,
    functions: Vec<Arc<LocalFunction>>,
    api_id: String,
    account_id: String,
    stats: Arc<Stats>,
}

impl HttpApi {
    /// The routes and the functions behind them.
    pub fn new(
        routes: Vec<(HttpRoute, Arc<LocalFunction>)>,
        deployment: &Deployment,
        stats: Arc<Stats>,
    ) -> Self {
        let api_logical_id = deployment
            .stack
            .ignored
            .iter()
            .find(|r| r.resource_type == "AWS::Serverless::HttpApi")
            .map_or("ServerlessHttpApi", |r| r.logical_id.as_str());
        let api_id = template::api_id(&deployment.stack_name, api_logical_id);
        let (patterns, functions) = routes
            .into_iter()
            .map(|(route, function)| (RoutePattern::new(&route), function))
            .unzip();
        HttpApi {
            patterns,
            functions,
            api_id,
            account_id: template::DEFAULT_ACCOUNT_ID.to_owned(),
            stats,
        }
    }

    /// Listens on 127.0.0.1:`port` (0: any free port) until `stop` is cancelled.
    pub async fn serve(
        self,
        port: u16,
        stop: CancellationToken,
    ) -> Result<(SocketAddr, JoinHandle<()>), RuntimeError> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RuntimeError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| RuntimeError::Bind { addr, source })?;
        let api = Arc::new(self);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(error = %err, "accept failed");
                        continue;
                    }
                };
                let api = api.clone();
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(api.handle(request, peer, bound).await) }
                    });
                    if let Err(err) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(error = %err, "connection ended with an error");
                    }
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
            // Open keep-alive connections are closed with the server.
            connections.shutdown().await;
        });
        Ok((bound, task))
    }

    async fn handle(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        bound: SocketAddr,
    ) -> Response<Full<Bytes>> {
        self.stats.http_requests.fetch_add(1, Ordering::Relaxed);
        let (parts, body) = request.into_parts();
        let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(_) => {
                return write(OutgoingResponse::json(
                    413,
                    &json!({"message": "Request Entity Too Large"}),
                ));
            }
        };
        let incoming = IncomingRequest {
            method: parts.method.as_str().to_owned(),
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().unwrap_or_default().to_owned(),
            headers: parts
                .headers
                .iter()
                .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect(),
            body,
            source_ip: peer.ip().to_string(),
            protocol: format!("{:?}", parts.version),
        };
        let Some((index, params)) = find_route(&self.patterns, &incoming.method, &incoming.path)
        else {
            self.stats.http_unmatched.fetch_add(1, Ordering::Relaxed);
            return write(OutgoingResponse::json(
                404,
                &json!({"message": "Not Found"}),
            ));
        };
        let function = &self.functions[index];
        function
            .stats()
            .http_requests
            .fetch_add(1, Ordering::Relaxed);
        let api = ApiContext {
            api_id: self.api_id.clone(),
            account_id: self.account_id.clone(),
            domain_name: parts
                .headers
                .get(hyper::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map_or_else(|| bound.to_string(), str::to_owned),
        };
        let event = request_event(&incoming, &self.patterns[index].route_key, &params, &api);
        let output = function.invoke(event).await;
        write(response_from(output.as_ref()))
    }
}

fn write(response: OutgoingResponse) -> Response<Full<Bytes>> {
    let mut out = Response::new(Full::new(Bytes::from(response.body)));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let (Ok(name), Ok(value)) = (
            hyper::header::HeaderName::from_bytes(name.as_bytes()),
            hyper::header::HeaderValue::from_str(&value),
        ) {
            out.headers_mut().append(name, value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::apigw::{ApiGatewayV2httpRequest, ApiGatewayV2httpResponse};

    fn route(method: &str, path: &str) -> RoutePattern {
        RoutePattern::new(&HttpRoute {
            name: "r".into(),
            method: method.into(),
            path: path.into(),
        })
    }

    fn routes() -> Vec<RoutePattern> {
        vec![
            route("POST", "/orders"),
            route("POST", "/orders/{id}/cancel"),
            route("GET", "/orders/{id}"),
            route("GET", "/orders/{id}/events"),
            route("GET", "/orders/latest"),
            route("ANY", "/files/{path+}"),
        ]
    }

    #[test]
    fn routes_match_method_path_and_parameters() {
        let routes = routes();
        let found = |m: &str, p: &str| {
            find_route(&routes, m, p).map(|(i, params)| (routes[i].route_key.clone(), params))
        };
        assert_eq!(found("POST", "/orders").unwrap().0, "POST /orders");
        let (key, params) = found("GET", "/orders/o-1/events").unwrap();
        assert_eq!(key, "GET /orders/{id}/events");
        assert_eq!(params["id"], "o-1");
        assert_eq!(found("GET", "/orders/a%20b").unwrap().1["id"], "a b");
        assert_eq!(
            found("GET", "/orders/latest").unwrap().0,
            "GET /orders/latest",
            "literal beats a parameter"
        );
        assert_eq!(found("DELETE", "/files/a/b/c").unwrap().1["path"], "a/b/c");
        assert!(found("GET", "/orders").is_none());
        assert!(found("PUT", "/orders/1").is_none());
        assert!(found("GET", "/orders/1/events/x").is_none());
        assert!(found("GET", "/files").is_none());
    }

    #[test]
    fn the_default_route_catches_the_rest() {
        let mut routes = routes();
        routes.push(route("ANY", "$default"));
        let (i, _) = find_route(&routes, "GET", "/nowhere").unwrap();
        assert_eq!(routes[i].route_key, "$default");
        let (i, _) = find_route(&routes, "POST", "/orders").unwrap();
        assert_eq!(routes[i].route_key, "POST /orders");
    }

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
