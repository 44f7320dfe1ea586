//! `ripple invoke`: one function's real binary on one event, as Lambda would run it, against a
//! stack in the emulator (what `make invoke` runs).
//!
//! The stack is found, or provisioned if it does not exist yet; the events the sample presumes
//! (`--given`) are appended to its event store; the template's binaries are built by cargo
//! (`build`); and the function's binary runs under a local Lambda Runtime API (`runtime_api`)
//! with exactly the environment its template entry declares plus what Lambda sets. Nothing else
//! of this process's environment reaches it but the emulator's endpoints and credentials, so a
//! variable the template forgot fails the function here as it would in Lambda, at once, with
//! its log.
//!
//! The event envelopes of an SQS event are sent as if just published (`time` set to now):
//! consumers refuse events older than their replay window, and a sample is written once.

mod build;
mod runtime_api;

use aws_sdk_dynamodb::config::ProvideCredentials as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use ripple_kit::store::DynamoEventStore;
use ripple_kit::{Append, Envelope, EventStore, StoreError};
use serde_json::Value;

use crate::stack::{self, Session, StackArgs, StackError};

pub use build::BuildError;
pub use runtime_api::{Answer, RunError};

/// Options of `ripple invoke`.
#[derive(Debug, Clone, clap::Args)]
pub struct InvokeArgs {
    /// The function: its logical id (OrdersApiFunction) or its binary (orders-api).
    pub function: String,
    /// The event: a Lambda payload in a JSON file, `-` for stdin.
    #[arg(long)]
    pub event: PathBuf,
    /// What the event presumes happened before, appended to the stack's event store first: an
    /// SQS event whose messages carry event envelopes (the placed order a payment is for).
    #[arg(long)]
    pub given: Option<PathBuf>,
    /// Keep the function's log and cargo's progress to the error report of a failure.
    #[arg(long)]
    pub quiet: bool,
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
}

/// Why the invocation did not happen, or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    /// The stack is not usable.
    #[error("stack")]
    Stack(#[from] StackError),
    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not JSON.
    #[error("{} is not JSON", path.display())]
    NotJson {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// The `--given` file is not an SQS event of event envelopes.
    #[error("{}: {message}", path.display())]
    Given {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The stack has no event store to append the given events to.
    #[error("the template's functions name no events table")]
    NoEventStore,
    /// The given events could not be stored.
    #[error("cannot append the given events to {table}")]
    Append {
        /// The events table.
        table: String,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The binaries could not be built.
    #[error("cannot build the functions")]
    Build(#[from] BuildError),
    /// cargo built no binary of that name.
    #[error("cargo built no binary {0}")]
    NoBinary(String),
    /// The function gave no answer.
    #[error("invocation failed")]
    Run(#[from] RunError),
}

impl InvocationError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            InvocationError::Stack(err) => err.hint(),
            _ => None,
        }
    }
}

/// Runs `ripple invoke`.
pub async fn run(args: &InvokeArgs) -> Result<Answer, InvocationError> {
    let session = Session::open(&args.stack).await?;
    let deployment = session.lookup_or_provision().await?;
    let function = stack::function(&deployment, &args.function)?;
    let event = sent_now(read_json(&args.event)?);
    if let Some(given) = &args.given {
        let table = deployment
            .events_table()
            .ok_or(InvocationError::NoEventStore)?;
        let store =
            DynamoEventStore::new(session.connection.clients.dynamodb.clone(), table.clone());
        for envelope in envelopes(given, &read_json(given)?)? {
            // Appending the same envelope again is a success: the store recognises its own event.
            store
                .append(Append::events(vec![envelope]))
                .await
                .map_err(|source| InvocationError::Append {
                    table: table.clone(),
                    source,
                })?;
        }
    }
    let binaries: Vec<&str> = deployment
        .functions
        .values()
        .map(|f| f.binary.as_str())
        .collect();
    let built = build::build(&binaries, args.quiet).await?;
    let program = built
        .get(&function.binary)
        .ok_or_else(|| InvocationError::NoBinary(function.binary.clone()))?;
    tracing::info!(function = %function.logical_id, stack = %deployment.stack_name, "invoking");
    // Lambda hands a function its role's credentials in its environment; the runner hands it the
    // ones it signs with itself (which may be the conventional ones it assumed for the emulator).
    let credentials = match session.connection.aws.credentials_provider() {
        Some(provider) => provider.provide_credentials().await.ok(),
        None => None,
    };
    Ok(runtime_api::invoke(program, function, credentials.as_ref(), event, !args.quiet).await?)
}

/// `event` with the `time` of every event envelope its SQS records carry set to now; any other
/// payload unchanged.
fn sent_now(mut event: Value) -> Value {
    let now = chrono::SubsecRound::trunc_subsecs(chrono::Utc::now(), 3);
    let records = event.get_mut("Records").and_then(Value::as_array_mut);
    for record in records.into_iter().flatten() {
        let Some(body) = record["body"].as_str() else {
            continue;
        };
        if let Ok(mut envelope) = Envelope::from_json(body) {
            envelope.time = now;
            record["body"] = Value::String(envelope.to_json());
        }
    }
    event
}

fn read_json(path: &Path) -> Result<Value, InvocationError> {
    let read = |source| InvocationError::Read {
        path: path.to_owned(),
        source,
    };
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).map_err(read)?;
        text
    } else {
        std::fs::read_to_string(path).map_err(read)?
    };
    serde_json::from_str(&text).map_err(|source| InvocationError::NotJson {
        path: path.to_owned(),
        source,
    })
}

/// The envelopes the messages of an SQS event carry.
fn envelopes(path: &Path, event: &Value) -> Result<Vec<Envelope>, InvocationError> {
    let given = |message: String| InvocationError::Given {
        path: path.to_owned(),
        message,
    };
    let records = event["Records"]
        .as_array()
        .ok_or_else(|| given("not an SQS event: it has no Records".into()))?;
    records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            let body = record["body"]
                .as_str()
                .ok_or_else(|| given(format!("record {i} has no body")))?;
            Envelope::from_json(body)
                .map_err(|e| given(format!("record {i} is not an event envelope: {e}")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_envelopes_are_sent_as_if_just_published() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../events/inventory-order-placed.json"
        );
        let sample = read_json(Path::new(path)).unwrap();
        let sent = sent_now(sample.clone());
        let before = Envelope::from_json(sample["Records"][0]["body"].as_str().unwrap()).unwrap();
        let after = Envelope::from_json(sent["Records"][0]["body"].as_str().unwrap()).unwrap();
        assert!(after.time > before.time);
        assert_eq!((after.id, after.data), (before.id, before.data));
        let not_sqs = serde_json::json!({"version": "2.0", "body": "{}"});
        assert_eq!(sent_now(not_sqs.clone()), not_sqs);
    }
}
