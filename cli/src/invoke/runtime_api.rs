//! The Lambda Runtime API for one invocation of a function's real binary.
//!
//! The process starts with the environment Lambda would give it: the template's variables, what
//! Lambda sets (`AWS_LAMBDA_FUNCTION_NAME`, ...), and `AWS_LAMBDA_RUNTIME_API`, where this
//! module answers `GET /runtime/invocation/next` with the event once and takes the answer from
//! `POST .../response` or `.../error` (`/runtime/init/error` at start-up). Whichever comes first
//! ends the invocation: the answer, the process exiting, or the function's timeout (plus
//! Lambda's 10 s for start-up) running out. Of this process's own environment only the
//! emulator's endpoints, the credentials and what a process needs to run pass through.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::config::Credentials;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::provision::DeployedFunction;

/// Lambda's limit on a function's start-up (its init phase).
const INIT_LIMIT: Duration = Duration::from_secs(10);
/// Lines of the function's output kept for an error report.
const LOG_LINES: usize = 200;
const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";

/// The function's answer, and what it logged meanwhile.
#[derive(Debug, Clone)]
pub struct Answer {
    /// What the function returned, as JSON.
    pub response: Value,
    /// Its stdout and stderr, the last lines.
    pub log: Vec<String>,
}

impl Answer {
    /// The records a batch response reports as failed (`batchItemFailures`).
    pub fn failed_records(&self) -> Vec<String> {
        self.response["batchItemFailures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| {
                f["itemIdentifier"]
                    .as_str()
                    .map_or_else(|| f.to_string(), str::to_owned)
            })
            .collect()
    }
}

/// Why the function gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The Runtime API could not listen.
    #[error("cannot serve the Lambda Runtime API")]
    Serve(#[source] std::io::Error),
    /// The binary could not be started.
    #[error("cannot start {program}")]
    Spawn {
        /// The binary.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The process ended before it answered (at start-up, typically: a missing setting).
    #[error("{function} exited before it answered ({status})")]
    Exited {
        /// The function.
        function: String,
        /// How it ended.
        status: String,
        /// What it printed.
        log: Vec<String>,
    },
    /// The function reported that it could not start.
    #[error("{function} could not start: {error}")]
    InitFailed {
        /// The function.
        function: String,
        /// What it reported.
        error: String,
        /// What it printed.
        log: Vec<String>,
    },
    /// The function returned an error.
    #[error("{function} returned an error: {error}")]
    Failed {
        /// The function.
        function: String,
        /// What it reported.
        error: String,
        /// What it printed.
        log: Vec<String>,
    },
    /// No answer within the function's timeout (and the start-up allowance).
    #[error("{function} did not answer within {} s", limit.as_secs())]
    TimedOut {
        /// The function.
        function: String,
        /// How long it had.
        limit: Duration,
        /// What it printed.
        log: Vec<String>,
    },
}

impl RunError {
    /// What the function printed before it failed (empty when it never ran).
    pub fn log(&self) -> &[String] {
        match self {
            RunError::Exited { log, .. }
            | RunError::InitFailed { log, .. }
            | RunError::Failed { log, .. }
            | RunError::TimedOut { log, .. } => log,
            RunError::Serve(_) | RunError::Spawn { .. } => &[],
        }
    }
}

/// How the invocation ended, as the function reported it.
enum Reported {
    Response(Value),
    Error(String),
    InitError(String),
}

/// Runs `program` as `function` and hands it `event`; `echo` copies its output to stderr as it
/// comes.
pub async fn invoke(
    program: &Path,
    function: &DeployedFunction,
    credentials: Option<&Credentials>,
    event: Value,
    echo: bool,
) -> Result<Answer, RunError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(RunError::Serve)?;
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    let (reported, answer) = oneshot::channel();
    let api = Arc::new(RuntimeApi {
        event: Mutex::new(Some(event)),
        reported: Mutex::new(Some(reported)),
        arn: function.arn.clone(),
        timeout: function.timeout,
    });
    let stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, api, stop.clone()));
    let mut child = command(program, function, credentials, addr)
        .spawn()
        .map_err(|source| RunError::Spawn {
            program: program.display().to_string(),
            source,
        })?;
    let log = Log::capture(&mut child, echo);
    let limit = INIT_LIMIT + function.timeout;
    let ended = tokio::select! {
        biased;
        reported = answer => Ended::Reported(reported.ok()),
        status = child.wait() => Ended::Exited(status.map_or_else(|e| e.to_string(), |s| s.to_string())),
        () = tokio::time::sleep(limit) => Ended::TimedOut,
    };
    // The process waits for its next event now: Lambda would freeze it, here it is stopped.
    let _ = child.start_kill();
    let _ = child.wait().await;
    stop.cancel();
    let _ = server.await;
    let log = log.finish().await;
    let name = function.logical_id.clone();
    match ended {
        Ended::Reported(Some(Reported::Response(response))) => Ok(Answer { response, log }),
        Ended::Reported(Some(Reported::Error(error))) => Err(RunError::Failed {
            function: name,
            error,
            log,
        }),
        Ended::Reported(Some(Reported::InitError(error))) => Err(RunError::InitFailed {
            function: name,
            error,
            log,
        }),
        Ended::Reported(None) | Ended::TimedOut => Err(RunError::TimedOut {
            function: name,
            limit,
            log,
        }),
        Ended::Exited(status) => Err(RunError::Exited {
            function: name,
            status,
            log,
        }),
    }
}

enum Ended {
    Reported(Option<Reported>),
    Exited(String),
    TimedOut,
}

/// The function's process, with the environment Lambda gives it.
fn command(
    program: &Path,
    function: &DeployedFunction,
    credentials: Option<&Credentials>,
    runtime_api: SocketAddr,
) -> Command {
    let mut command = Command::new(program);
    command.env_clear();
    command.envs(std::env::vars().filter(|(key, _)| passes_through(key)));
    command.envs(&function.environment);
    if let Some(credentials) = credentials {
        command
            .env("AWS_ACCESS_KEY_ID", credentials.access_key_id())
            .env("AWS_SECRET_ACCESS_KEY", credentials.secret_access_key())
            .env_remove("AWS_SESSION_TOKEN");
        if let Some(token) = credentials.session_token() {
            command.env("AWS_SESSION_TOKEN", token);
        }
    }
    // A developer's RUST_LOG wins over the template's, to look closer at one invocation.
    if let Ok(filter) = std::env::var("RUST_LOG") {
        command.env("RUST_LOG", filter);
    }
    command
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string())
        .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
        .env(
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("local/[$LATEST]{}", uuid::Uuid::new_v4().simple()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// What of this process's environment a function sees: how to reach the emulator and sign for
/// it, and what any process needs.
fn passes_through(key: &str) -> bool {
    key.starts_with("AWS_ENDPOINT_URL")
        || matches!(
            key,
            "AWS_ACCESS_KEY_ID"
                | "AWS_SECRET_ACCESS_KEY"
                | "AWS_SESSION_TOKEN"
                | "AWS_PROFILE"
                | "AWS_CONFIG_FILE"
                | "AWS_SHARED_CREDENTIALS_FILE"
                | "HOME"
                | "PATH"
                | "TMPDIR"
                | "RUST_BACKTRACE"
        )
}

/// The function's stdout and stderr, line by line: echoed, and the last lines kept.
struct Log {
    lines: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Log {
    fn capture(child: &mut Child, echo: bool) -> Self {
        let lines: Arc<Mutex<VecDeque<String>>> = Arc::default();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(read_lines(stdout, lines.clone(), echo)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(read_lines(stderr, lines.clone(), echo)));
        }
        Log { lines, readers }
    }

    /// Every line, once the process's pipes are closed.
    async fn finish(self) -> Vec<String> {
        for reader in self.readers {
            let _ = reader.await;
        }
        self.lines
            .lock()
            .map(|lines| lines.iter().cloned().collect())
            .unwrap_or_default()
    }
}

async fn read_lines(pipe: impl AsyncRead + Unpin, lines: Arc<Mutex<VecDeque<String>>>, echo: bool) {
    let mut reader = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        if echo {
            eprintln!("{line}");
        }
        if let Ok(mut kept) = lines.lock() {
            if kept.len() == LOG_LINES {
                kept.pop_front();
            }
            kept.push_back(line);
        }
    }
}

/// The state of the one invocation the API serves.
struct RuntimeApi {
    event: Mutex<Option<Value>>,
    reported: Mutex<Option<oneshot::Sender<Reported>>>,
    arn: String,
    timeout: Duration,
}

async fn serve(listener: TcpListener, api: Arc<RuntimeApi>, stop: CancellationToken) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let api = api.clone();
        connections.spawn(async move {
            let service = service_fn(move |request| {
                let api = api.clone();
                async move { Ok::<_, Infallible>(api.handle(request).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    // A `next` still waiting for an event is dropped with its connection.
    connections.shutdown().await;
}

impl RuntimeApi {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = request.uri().path().to_owned();
        if request.method() == Method::GET && path == NEXT {
            return self.next().await;
        }
        if request.method() != Method::POST {
            return reply(StatusCode::NOT_FOUND, &json!({"errorMessage": "not found"}));
        }
        let body = request
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let reported = if path == INIT_ERROR {
            Reported::InitError(error_text(&body))
        } else if let Some(rest) = path.strip_prefix(INVOCATION) {
            match rest.rsplit_once('/') {
                Some((_, "response")) => Reported::Response(
                    serde_json::from_slice(&body)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into())),
                ),
                Some((_, "error")) => Reported::Error(error_text(&body)),
                _ => return reply(StatusCode::NOT_FOUND, &json!({"errorMessage": "not found"})),
            }
        } else {
            return reply(StatusCode::NOT_FOUND, &json!({"errorMessage": "not found"}));
        };
        if let Some(sender) = self.reported.lock().ok().and_then(|mut s| s.take()) {
            let _ = sender.send(reported);
        }
        reply(StatusCode::ACCEPTED, &json!({"status": "OK"}))
    }

    /// The event, the first time; later calls wait (the process is stopped meanwhile).
    async fn next(&self) -> Response<Full<Bytes>> {
        let event = self.event.lock().ok().and_then(|mut e| e.take());
        let Some(event) = event else {
            return std::future::pending().await;
        };
        let now = SystemTime::now();
        let deadline = (now + self.timeout)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        let epoch = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let trace = format!(
            "Root=1-{epoch:08x}-{:024x};Parent={:016x};Sampled=1",
            fastrand::u128(..) >> 32,
            fastrand::u64(..)
        );
        let mut response = reply(StatusCode::OK, &event);
        let headers = [
            (
                "lambda-runtime-aws-request-id",
                uuid::Uuid::new_v4().to_string(),
            ),
            ("lambda-runtime-deadline-ms", deadline.to_string()),
            ("lambda-runtime-invoked-function-arn", self.arn.clone()),
            ("lambda-runtime-trace-id", trace),
        ];
        for (name, value) in headers {
            if let Ok(value) = hyper::header::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

/// `errorType: errorMessage` of an error the runtime posts; the message alone when the type is
/// a Rust type path (what the Rust runtime reports for a boxed error).
fn error_text(body: &[u8]) -> String {
    let Ok(error) = serde_json::from_slice::<Value>(body) else {
        return String::from_utf8_lossy(body).into_owned();
    };
    let message = error["errorMessage"].as_str().unwrap_or_default();
    match error["errorType"].as_str() {
        Some(kind) if !kind.contains([':', '<', '&']) => format!("{kind}: {message}"),
        _ => message.to_owned(),
    }
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn only_the_emulator_credentials_and_basics_pass_through() {
        for key in [
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SQS",
            "AWS_ACCESS_KEY_ID",
            "PATH",
        ] {
            assert!(passes_through(key), "{key}");
        }
        for key in [
            "EVENTS_TABLE",
            "IDEMPOTENCY_TABLE",
            "RIPPLE_ANYTHING",
            "CARGO",
        ] {
            assert!(!passes_through(key), "{key}");
        }
    }

    #[test]
    fn the_function_signs_with_the_credentials_the_runner_signs_with() {
        let function = DeployedFunction {
            logical_id: "F".into(),
            name: "f".into(),
            arn: "arn:aws:lambda:us-east-1:000000000000:function:f".into(),
            binary: "f".into(),
            timeout: Duration::from_secs(3),
            environment: BTreeMap::from([("AWS_REGION".into(), "us-east-1".into())]),
            events: Vec::new(),
        };
        let credentials = Credentials::new("test", "secret", None, None, "test");
        let runtime_api = SocketAddr::from((Ipv4Addr::LOCALHOST, 9001));
        let command = command(Path::new("f"), &function, Some(&credentials), runtime_api);
        let env: BTreeMap<_, _> = command
            .as_std()
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert_eq!(env["AWS_ACCESS_KEY_ID"].as_deref(), Some("test"));
        assert_eq!(env["AWS_SECRET_ACCESS_KEY"].as_deref(), Some("secret"));
        assert_eq!(env["AWS_REGION"].as_deref(), Some("us-east-1"));
        assert!(
            env.get("AWS_SESSION_TOKEN").is_none_or(Option::is_none),
            "no session token but the credentials' own"
        );
    }

    #[test]
    fn runtime_errors_read_as_type_and_message() {
        let body = br#"{"errorType":"Missing","errorMessage":"IDEMPOTENCY_TABLE"}"#;
        assert_eq!(error_text(body), "Missing: IDEMPOTENCY_TABLE");
        assert_eq!(error_text(b"plain text"), "plain text");
        let boxed = br#"{"errorType":"&alloc::boxed::Box<dyn core::error::Error>","errorMessage":"all 1 records of the batch failed"}"#;
        assert_eq!(error_text(boxed), "all 1 records of the batch failed");
    }

    #[test]
    fn failed_records_are_read_from_the_batch_response() {
        let answer = |response| Answer {
            response,
            log: Vec::new(),
        };
        let failed = json!({"batchItemFailures": [{"itemIdentifier": "m-2"}]});
        assert_eq!(answer(failed).failed_records(), ["m-2"]);
        assert!(
            answer(json!({"batchItemFailures": []}))
                .failed_records()
                .is_empty()
        );
        assert!(
            answer(json!({"statusCode": 201}))
                .failed_records()
                .is_empty()
        );
    }
}
