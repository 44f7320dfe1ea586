//! The HTTP client behind every AWS SDK client of the kit: HTTP/1.1, over rustls on `ring` with
//! the system's root certificates, on hyper's pooled client.
//!
//! The SDK's default client (`aws-smithy-http-client`) also speaks HTTP/2 and brings its own
//! connection pool; DynamoDB, SNS and SQS answer over HTTP/1.1, and the Lambda runtime already
//! links hyper's HTTP/1 client to talk to the Runtime API, so this client costs a function almost
//! nothing on top of it (README, "Figures": the `bootstrap` size). It honours what the SDK asks of
//! a connector:
//! - the connect and read timeouts of each client's [`HttpConnectorSettings`], one pooled
//!   connector per pair, and their expiry reported as [`ConnectorError::timeout`];
//! - connection failures, resets and closed connections reported as [`ConnectorError::io`] (the
//!   SDK retries both), a request the SDK built wrongly as [`ConnectorError::user`];
//! - the connection of each request exposed to the SDK, which poisons it after a transient error
//!   so that the retry opens a fresh one.
//!
//! It does not go through proxies (neither did the SDK client the kit built before: proxies are
//! off there unless configured).

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connection::{CaptureSmithyConnection, ConnectionMetadata};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::ErrorKind;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{CaptureConnection, HttpConnector as TcpConnector};
use hyper_util::client::legacy::{Client, connect::capture_connection};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;

/// The kit's HTTP client for the AWS SDK, trusting the system's root certificates.
///
/// A system without readable root certificates gets a client that refuses every HTTPS server (and
/// a log line that says why); plain `http://` endpoints (the local emulators) work regardless.
pub fn http_client() -> SharedHttpClient {
    let certificates = rustls_native_certs::load_native_certs();
    for error in &certificates.errors {
        tracing::warn!(%error, "a root certificate store could not be read");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certificates.certs);
    if ignored > 0 {
        tracing::warn!(
            ignored,
            "root certificates that rustls cannot parse were left out"
        );
    }
    if added == 0 {
        tracing::error!(
            "no root certificates found (set SSL_CERT_FILE or SSL_CERT_DIR): every HTTPS request will fail its certificate check"
        );
    }
    http_client_trusting(roots)
}

/// The kit's HTTP client for the AWS SDK, trusting only `roots` (a private CA, or a test's).
pub fn http_client_trusting(roots: RootCertStore) -> SharedHttpClient {
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|builder| builder.with_root_certificates(roots).with_no_client_auth());
    match tls {
        Ok(tls) => SharedHttpClient::new(Http1Client {
            tls: Arc::new(tls),
            connectors: Arc::default(),
        }),
        // ring offers TLS 1.2 and 1.3 in every build, so this is unreachable short of a rustls
        // bug; the client then fails every request with the reason rather than panicking here.
        Err(error) => {
            let reason = Arc::new(error.to_string());
            aws_smithy_runtime_api::client::http::http_client_fn(move |_, _| {
                let reason = Arc::clone(&reason);
                SharedHttpConnector::new(Refusing(reason))
            })
        }
    }
}

/// The connect and read timeouts a connector was built for.
type Timeouts = (Option<Duration>, Option<Duration>);

/// One pooled connector per pair of timeouts the SDK's clients ask for (in practice one).
#[derive(Clone)]
struct Http1Client {
    tls: Arc<rustls::ClientConfig>,
    connectors: Arc<Mutex<HashMap<Timeouts, SharedHttpConnector>>>,
}

impl fmt::Debug for Http1Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Client").finish_non_exhaustive()
    }
}

impl HttpClient for Http1Client {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        let timeouts = (settings.connect_timeout(), settings.read_timeout());
        let mut connectors = self
            .connectors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        connectors
            .entry(timeouts)
            .or_insert_with(|| SharedHttpConnector::new(Http1Connector::new(&self.tls, timeouts)))
            .clone()
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some("1.x-http1".into())))
    }
}

/// Sends each request on a pooled HTTP/1.1 connection, opening one (TCP, then TLS for `https`)
/// when none is idle.
struct Http1Connector {
    client: Client<HttpsConnector<TcpConnector>, SdkBody>,
    read_timeout: Option<Duration>,
}

impl Http1Connector {
    fn new(tls: &Arc<rustls::ClientConfig>, (connect, read): Timeouts) -> Self {
        let mut tcp = TcpConnector::new();
        tcp.enforce_http(false);
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(connect);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.as_ref().clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            // Without a timer the pool never expires an idle connection.
            .pool_timer(TokioTimer::new())
            .build(https);
        Http1Connector {
            client,
            read_timeout: read,
        }
    }
}

impl fmt::Debug for Http1Connector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http1Connector")
            .field("read_timeout", &self.read_timeout)
            .finish_non_exhaustive()
    }
}

impl HttpConnector for Http1Connector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let mut request = match request.try_into_http1x() {
            Ok(request) => request,
            Err(error) => {
                return HttpConnectorFuture::ready(Err(ConnectorError::user(error.into())));
            }
        };
        let connection = capture_connection(&mut request);
        if let Some(capture) = request.extensions().get::<CaptureSmithyConnection>() {
            capture.set_connection_retriever(move || connection_metadata(&connection));
        }
        let response = self.client.request(request);
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let response = match read_timeout {
                None => response.await,
                Some(limit) => match tokio::time::timeout(limit, response).await {
                    Ok(response) => response,
                    Err(_) => return Err(ConnectorError::timeout(Box::new(ReadTimeout(limit)))),
                },
            };
            match response {
                Ok(response) => HttpResponse::try_from(response.map(SdkBody::from_body_1_x))
                    .map_err(|error| ConnectorError::other(error.into(), None)),
                Err(error) => Err(connector_error(error)),
            }
        })
    }
}

/// The request's connection as the SDK sees it: poisoning it keeps it out of the pool.
fn connection_metadata(connection: &CaptureConnection) -> Option<ConnectionMetadata> {
    let connected = connection.connection_metadata();
    let connected = connected.as_ref()?;
    let poison = connection.clone();
    Some(
        ConnectionMetadata::builder()
            .proxied(connected.is_proxied())
            .poison_fn(move || {
                if let Some(connected) = poison.connection_metadata().as_ref() {
                    connected.poison();
                }
            })
            .build(),
    )
}

/// No response headers within the read timeout.
#[derive(Debug)]
struct ReadTimeout(Duration);

impl fmt::Display for ReadTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no response within the read timeout of {:?}", self.0)
    }
}

impl Error for ReadTimeout {}

/// What the SDK's retry strategy should make of a failed request.
fn connector_error(error: hyper_util::client::legacy::Error) -> ConnectorError {
    let error: BoxError = Box::new(error);
    let kind = classify(error.as_ref());
    match kind {
        Failure::Timeout => ConnectorError::timeout(error),
        Failure::Io => ConnectorError::io(error),
        Failure::User => ConnectorError::user(error),
        Failure::Transient => ConnectorError::other(error, Some(ErrorKind::TransientError)),
        Failure::Other => ConnectorError::other(error, None),
    }
}

/// The classes of [`ConnectorError`], as the SDK's own client sorts hyper's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Connecting or reading took too long: retried.
    Timeout,
    /// The connection failed, was reset or closed: retried on a new connection.
    Io,
    /// The request itself is wrong: not retried.
    User,
    /// Another failure worth retrying (a response cut short).
    Transient,
    /// Anything else: not retried.
    Other,
}

/// Sorts `error` by what its chain holds: a timed-out I/O error, a failure to connect, hyper's
/// own kinds, any I/O error.
fn classify(error: &(dyn Error + 'static)) -> Failure {
    let chain = || std::iter::successors(Some(error), |&e| e.source());
    let io = chain().find_map(|e| e.downcast_ref::<std::io::Error>());
    if io.is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
        return Failure::Timeout;
    }
    let connecting = chain()
        .filter_map(|e| e.downcast_ref::<hyper_util::client::legacy::Error>())
        .any(hyper_util::client::legacy::Error::is_connect);
    if connecting {
        return Failure::Io;
    }
    if let Some(hyper) = chain().find_map(|e| e.downcast_ref::<hyper::Error>()) {
        if hyper.is_timeout() {
            return Failure::Timeout;
        }
        if hyper.is_user() {
            return Failure::User;
        }
        if hyper.is_closed() || hyper.is_canceled() || io.is_some() {
            return Failure::Io;
        }
        if hyper.is_incomplete_message() {
            return Failure::Transient;
        }
        return Failure::Other;
    }
    if io.is_some() {
        return Failure::Io;
    }
    Failure::Other
}

/// The connector of a client whose TLS could not be configured: refuses every request with why.
#[derive(Debug)]
struct Refusing(Arc<String>);

impl HttpConnector for Refusing {
    fn call(&self, _: HttpRequest) -> HttpConnectorFuture {
        let reason = format!("TLS is not configured: {}", self.0);
        HttpConnectorFuture::ready(Err(ConnectorError::other(reason.into(), None)))
    }
}

#[cfg(test)]
mod tests;
