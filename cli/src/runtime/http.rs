//! The HTTP API: a local HTTP/1.1 server that routes requests as API Gateway HTTP APIs do and
//! invokes the route's function with a payload-format 2.0 event.
//!
//! Routes come from the template's `HttpApi` events. The most specific route wins (literal
//! segments over `{param}` over `{proxy+}`, an exact method over `ANY`, `$default` last), the
//! event carries the route key, raw path and query, lower-cased headers, cookies, path and query
//! parameters, and the function's response (or its failure) becomes the HTTP response exactly as
//! API Gateway would write it.
//!
//! A route the template protects with a JWT authorizer gets its token checked as API Gateway
//! checks it (`auth`), against the runner's local issuer, and the verified claims in
//! `requestContext.authorizer.jwt`; a request that fails gets API Gateway's 401 or 403.
//!
//! The server is here; matching a request to a route is in `routes`, the token checks in `auth`,
//! and the event and response formats in `payload`.

pub mod auth;
mod payload;
mod routes;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{LocalFunction, RuntimeError, Stats};
use crate::provision::Deployment;
use crate::template::{self, Authorization, HttpRoute};

pub use auth::{Denied, JwtAuthorizer, Verified};
pub use payload::{ApiContext, IncomingRequest, OutgoingResponse, request_event, response_from};
pub(crate) use routes::percent_decode;
pub use routes::{RoutePattern, find_route};

/// Lambda's synchronous payload limit.
const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// The HTTP API of one deployment.
pub struct HttpApi {
    patterns: Vec<RoutePattern>,
    functions: Vec<Arc<LocalFunction>>,
    authorizer: Option<JwtAuthorizer>,
    api_id: String,
    account_id: String,
    stats: Arc<Stats>,
}

impl HttpApi {
    /// The routes and the functions behind them; `authorizer` checks the tokens of the routes
    /// the template protects (every such route is refused without one).
    pub fn new(
        routes: Vec<(HttpRoute, Arc<LocalFunction>)>,
        deployment: &Deployment,
        authorizer: Option<JwtAuthorizer>,
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
            authorizer,
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
        let (listener, bound) = super::listen::bind(port).await?;
        let api = Arc::new(self);
        let task = super::listen::serve(listener, stop, move |request, peer| {
            let api = api.clone();
            async move { api.handle(request, peer, bound).await }
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
        let verified = match self.authorize(&self.patterns[index], &incoming) {
            Ok(verified) => verified,
            Err(refused) => return write(refused),
        };
        let mut event = request_event(&incoming, &self.patterns[index].route_key, &params, &api);
        if let Some(verified) = verified {
            event["requestContext"]["authorizer"] = verified.authorizer_context();
        }
        let output = function.invoke(event).await;
        write(response_from(output.as_ref()))
    }

    /// The verified identity a protected route needs, or API Gateway's refusal.
    fn authorize(
        &self,
        pattern: &RoutePattern,
        request: &IncomingRequest,
    ) -> Result<Option<Verified>, OutgoingResponse> {
        let Authorization::Jwt { scopes, .. } = &pattern.authorization else {
            return Ok(None);
        };
        let Some(authorizer) = &self.authorizer else {
            tracing::error!(route = %pattern.route_key, "the route needs a JWT authorizer and the runner has none");
            return Err(OutgoingResponse::json(
                500,
                &json!({"message": "Internal Server Error"}),
            ));
        };
        let header = request
            .headers
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("authorization"))
            .map(|(_, value)| value.as_str());
        match authorizer.verify(header, scopes) {
            Ok(verified) => Ok(Some(verified)),
            Err(Denied::Unauthorized(reason)) => {
                tracing::info!(route = %pattern.route_key, %reason, "401: token refused");
                Err(OutgoingResponse::json(
                    401,
                    &json!({"message": "Unauthorized"}),
                ))
            }
            Err(Denied::Forbidden(reason)) => {
                tracing::info!(route = %pattern.route_key, %reason, "403: scope missing");
                Err(OutgoingResponse::json(
                    403,
                    &json!({"message": "Forbidden"}),
                ))
            }
        }
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
