//! The kit's HTTP client under a real SDK client, against local servers that answer, stay
//! silent, hang up or present certificates (a test CA, `test-ca.pem`, signed `localhost`'s).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::SdkError;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

use super::*;

const CA: &[u8] = include_bytes!("test-ca.pem");
const LOCALHOST_CERT: &[u8] = include_bytes!("test-localhost.pem");
const LOCALHOST_KEY: &[u8] = include_bytes!("test-localhost.key");

/// What the local server does with each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Answers every request as DynamoDB answers a `GetItem` of a missing item.
    Answer,
    /// Reads requests and never answers them.
    Silent,
    /// Closes every connection as soon as it is accepted.
    HangUp,
}

/// A local server and what it has seen.
struct Server {
    endpoint: String,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// Serves `behaviour` on a free local port, over TLS with `localhost`'s certificate if `tls`.
async fn serve(behaviour: Behaviour, tls: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scheme = if tls { "https" } else { "http" };
    let acceptor = tls.then(|| {
        let certificates = vec![CertificateDer::from_pem_slice(LOCALHOST_CERT).unwrap()];
        let key = PrivateKeyDer::from_pem_slice(LOCALHOST_KEY).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certificates, key)
        .unwrap();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let server = Server {
        endpoint: format!("{scheme}://localhost:{port}"),
        connections: Arc::default(),
        requests: Arc::default(),
    };
    let (connections, requests) = (server.connections.clone(), server.requests.clone());
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            connections.fetch_add(1, Ordering::SeqCst);
            if behaviour == Behaviour::HangUp {
                drop(stream);
                continue;
            }
            let requests = requests.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_: hyper::Request<Incoming>| {
                    requests.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if behaviour == Behaviour::Silent {
                            std::future::pending::<()>().await;
                        }
                        let answer = hyper::Response::builder()
                            .header("content-type", "application/x-amz-json-1.0")
                            .body(Full::new(Bytes::from_static(b"{}")))
                            .unwrap();
                        Ok::<_, Infallible>(answer)
                    }
                });
                let http = hyper::server::conn::http1::Builder::new();
                match acceptor {
                    // A client that refuses the certificate ends the handshake: nothing to serve.
                    Some(acceptor) => {
                        if let Ok(stream) = acceptor.accept(stream).await {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                    }
                    None => {
                        let _ = http.serve_connection(TokioIo::new(stream), service).await;
                    }
                }
            });
        }
    });
    server
}

fn test_ca() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(CA).unwrap())
        .unwrap();
    roots
}

/// A DynamoDB client on `http` at `endpoint`: three attempts, `read_timeout` if any.
fn dynamodb(
    endpoint: &str,
    http: SharedHttpClient,
    read_timeout: Option<Duration>,
) -> aws_sdk_dynamodb::Client {
    let mut timeouts = TimeoutConfig::builder().connect_timeout(Duration::from_secs(2));
    timeouts.set_read_timeout(read_timeout);
    let timeouts = timeouts.build();
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("AKIDTEST", "secret", None, None, "test"))
        .endpoint_url(endpoint)
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(1)),
        )
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

async fn get_item(
    client: &aws_sdk_dynamodb::Client,
) -> Result<
    aws_sdk_dynamodb::operation::get_item::GetItemOutput,
    SdkError<aws_sdk_dynamodb::operation::get_item::GetItemError>,
> {
    client
        .get_item()
        .table_name("events")
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S("k".into()))
        .send()
        .await
}

fn dispatch_failure<E: fmt::Debug>(error: &SdkError<E>) -> &ConnectorError {
    match error {
        SdkError::DispatchFailure(failure) => failure.as_connector_error().unwrap(),
        other => panic!("expected a dispatch failure, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_over_plain_http_share_one_pooled_connection() {
    let server = serve(Behaviour::Answer, false).await;
    let client = dynamodb(&server.endpoint, http_client_trusting(test_ca()), None);
    for _ in 0..3 {
        let output = get_item(&client).await.unwrap();
        assert!(output.item.is_none());
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 3);
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        1,
        "the second and third requests reuse the first one's connection"
    );
}

#[tokio::test]
async fn https_verifies_the_server_against_the_trusted_roots() {
    let server = serve(Behaviour::Answer, true).await;
    let client = dynamodb(&server.endpoint, http_client_trusting(test_ca()), None);
    get_item(&client).await.unwrap();
    get_item(&client).await.unwrap();
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn https_refuses_a_server_no_trusted_root_vouches_for() {
    let server = serve(Behaviour::Answer, true).await;
    let client = dynamodb(
        &server.endpoint,
        http_client_trusting(RootCertStore::empty()),
        None,
    );
    let error = get_item(&client).await.unwrap_err();
    let failure = dispatch_failure(&error);
    assert!(
        failure.is_io(),
        "a failed handshake fails the connection: {failure:?}"
    );
    let chain = aws_smithy_types::error::display::DisplayErrorContext(&error).to_string();
    assert!(chain.contains("UnknownIssuer"), "{chain}");
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        0,
        "no request reaches an unverified server"
    );
}

#[tokio::test]
async fn no_answer_within_the_read_timeout_is_a_timeout_the_sdk_retries() {
    let server = serve(Behaviour::Silent, false).await;
    let client = dynamodb(
        &server.endpoint,
        http_client_trusting(test_ca()),
        Some(Duration::from_millis(100)),
    );
    let error = get_item(&client).await.unwrap_err();
    assert!(dispatch_failure(&error).is_timeout(), "{error:?}");
    assert_eq!(
        server.requests.load(Ordering::SeqCst),
        3,
        "every attempt sent"
    );
    assert_eq!(
        server.connections.load(Ordering::SeqCst),
        3,
        "a timed-out connection is not reused"
    );
}

#[tokio::test]
async fn a_connection_closed_before_an_answer_is_an_io_error_the_sdk_retries() {
    let server = serve(Behaviour::HangUp, false).await;
    let client = dynamodb(&server.endpoint, http_client_trusting(test_ca()), None);
    let error = get_item(&client).await.unwrap_err();
    assert!(dispatch_failure(&error).is_io(), "{error:?}");
    assert!(
        server.connections.load(Ordering::SeqCst) >= 3,
        "each attempt opens a connection"
    );
}

#[tokio::test]
async fn nothing_listening_is_an_io_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    drop(listener);
    let client = dynamodb(&endpoint, http_client_trusting(test_ca()), None);
    let error = get_item(&client).await.unwrap_err();
    assert!(dispatch_failure(&error).is_io(), "{error:?}");
}

#[tokio::test]
async fn the_system_roots_load() {
    // The process's roots: this machine's store (or none); either way a client, no panic.
    let client = dynamodb("http://127.0.0.1:9", http_client(), None);
    assert!(get_item(&client).await.is_err());
}

#[test]
fn hypers_errors_sort_as_the_sdks_client_sorts_them() {
    let io = |kind| std::io::Error::new(kind, "boom");
    assert_eq!(
        classify(&io(std::io::ErrorKind::TimedOut)),
        Failure::Timeout
    );
    assert_eq!(
        classify(&io(std::io::ErrorKind::ConnectionReset)),
        Failure::Io
    );
    assert_eq!(classify(&ReadTimeout(Duration::ZERO)), Failure::Other);
}
