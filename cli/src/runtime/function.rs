//! One function as the runtime calls it: a Lambda JSON payload and a context in, the JSON
//! response out, with its timeout, panics and errors reported as Lambda reports them.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt as _;
use futures::future::BoxFuture;
use lambda_runtime::{Context, LambdaEvent};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::stats::{FunctionStats, Stats};
use crate::provision::DeployedFunction;

/// A function as the runner calls it: a Lambda JSON payload and a context in, the JSON response
/// out.
pub type Invoke = Arc<
    dyn Fn(Value, Context) -> BoxFuture<'static, Result<Value, lambda_runtime::Error>>
        + Send
        + Sync,
>;

/// Wraps a typed handler (`LambdaEvent<In>` → `Out`) so that it speaks JSON, as the Lambda
/// runtime does: the payload is deserialised into `In` and the result serialised back.
pub fn invoke_fn<F, Fut, In, Out>(handler: F) -> Invoke
where
    F: Fn(LambdaEvent<In>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Out, lambda_runtime::Error>> + Send + 'static,
    In: DeserializeOwned + Send + 'static,
    Out: Serialize + 'static,
{
    let handler = Arc::new(handler);
    Arc::new(
        move |payload: Value, context: Context| match serde_json::from_value::<In>(payload) {
            Err(err) => {
                let err: lambda_runtime::Error =
                    format!("failed to deserialize the incoming data into the function's payload type: {err}")
                        .into();
                async move { Err(err) }.boxed()
            }
            Ok(input) => {
                let future = handler(LambdaEvent::new(input, context));
                async move {
                    let output = future.await?;
                    Ok(serde_json::to_value(output)?)
                }
                .boxed()
            }
        },
    )
}

/// An invocation's duration as Lambda bills it: rounded up to the next millisecond.
fn billed_ms(ran: Duration) -> u64 {
    u64::try_from(ran.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Why an invocation failed.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler returned an error (Lambda's "function error").
    #[error("{function} returned an error")]
    Failed {
        /// The function.
        function: String,
        /// The handler's error.
        #[source]
        source: lambda_runtime::Error,
    },
    /// The handler ran past its timeout.
    #[error("{function} timed out after {} s", timeout.as_secs_f64())]
    TimedOut {
        /// The function.
        function: String,
        /// Its timeout.
        timeout: Duration,
    },
    /// The handler panicked (Lambda reports the runtime exiting).
    #[error("{function} panicked: {message}")]
    Panicked {
        /// The function.
        function: String,
        /// The panic message.
        message: String,
    },
}

/// One function running in this process.
pub struct LocalFunction {
    /// Its logical id.
    pub logical_id: String,
    /// Its function name.
    pub name: String,
    /// Its ARN (the context's invoked function ARN).
    pub arn: String,
    /// Its timeout.
    pub timeout: Duration,
    memory_size: i32,
    invoke: Invoke,
    stats: Arc<FunctionStats>,
    all: Arc<Stats>,
}

impl std::fmt::Debug for LocalFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalFunction")
            .field("logical_id", &self.logical_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl LocalFunction {
    /// A function of `deployment` behind `invoke`, counting into `stats`.
    pub fn new(function: &DeployedFunction, invoke: Invoke, stats: Arc<Stats>) -> Self {
        let own = stats
            .function(&function.logical_id)
            .cloned()
            .unwrap_or_default();
        LocalFunction {
            logical_id: function.logical_id.clone(),
            name: function.name.clone(),
            arn: function.arn.clone(),
            timeout: function.timeout,
            memory_size: function
                .environment
                .get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.parse().ok())
                .unwrap_or(128),
            invoke,
            stats: own,
            all: stats,
        }
    }

    /// Its counters.
    pub fn stats(&self) -> &FunctionStats {
        &self.stats
    }

    /// A fresh invocation context, as the Lambda runtime API would give it.
    pub fn context(&self) -> Context {
        let now = SystemTime::now();
        let deadline = (now + self.timeout)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let epoch = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        let mut context = Context::default();
        context.request_id = uuid::Uuid::new_v4().to_string();
        context.deadline = deadline;
        context.invoked_function_arn = self.arn.clone();
        context.xray_trace_id = Some(format!(
            "Root=1-{epoch:08x}-{:024x};Parent={:016x};Sampled=1",
            fastrand::u128(..) >> 32,
            fastrand::u64(..)
        ));
        context.env_config = Arc::new(lambda_runtime::Config {
            function_name: self.name.clone(),
            memory: self.memory_size,
            version: "$LATEST".to_owned(),
            log_stream: format!("local/[$LATEST]{}", context.request_id.replace('-', "")),
            log_group: format!("/aws/lambda/{}", self.name),
        });
        context
    }

    /// Invokes the function with a Lambda payload; errors, timeouts and panics are reported as
    /// Lambda reports them, never propagated into the caller.
    pub async fn invoke(&self, payload: Value) -> Result<Value, InvokeError> {
        let context = self.context();
        let request_id = context.request_id.clone();
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        self.all.in_flight.fetch_add(1, Ordering::SeqCst);
        let started = std::time::Instant::now();
        let call = self
            .stats
            .requests
            .scope(AssertUnwindSafe((self.invoke)(payload, context)).catch_unwind());
        let outcome = tokio::time::timeout(self.timeout, call).await;
        self.stats
            .billed_ms
            .fetch_add(billed_ms(started.elapsed()), Ordering::Relaxed);
        self.all.in_flight.fetch_sub(1, Ordering::SeqCst);
        let result = match outcome {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(source))) => Err(InvokeError::Failed {
                function: self.logical_id.clone(),
                source,
            }),
            Ok(Err(panic)) => Err(InvokeError::Panicked {
                function: self.logical_id.clone(),
                message: panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".to_owned()),
            }),
            Err(_) => Err(InvokeError::TimedOut {
                function: self.logical_id.clone(),
                timeout: self.timeout,
            }),
        };
        if let Err(err) = &result {
            self.stats.errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(function = %self.logical_id, request_id, error = %ripple_kit::telemetry::error_chain(err), "invocation failed");
        }
        result
    }
}
