//! `ripple load`: orders at a steady rate through the whole system in the local runner, then
//! what they took: latency percentiles, outcomes, errors, the invariants `ripple dev` checks, the
//! AWS requests each order made and what a million orders cost at list prices. With `--stack`
//! naming a stack CloudFormation deployed (or with `--api`), the orders go to that stack's API
//! instead, and what they did is read back from it ([`deployed`]).
//!
//! It is `ripple dev` with a paced load and a longer report: the template is provisioned into
//! the emulator, every function runs in-process behind its event sources and the HTTP API (the
//! same machinery, [`crate::dev`]), the orders are POSTed at `--rate` a second, and the run
//! waits until the pipeline is quiet. The requests are counted by the kit's interceptor
//! ([`ripple_kit::requests`]) on every function's clients, and by a counter of its own on the
//! event source mappings' queue polling; the cost arithmetic is in [`cost`], the prices in
//! [`prices`], the report in `render`.

pub mod cost;
pub mod deployed;
pub mod prices;
mod render;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use ripple_kit::store::DynamoEventStore;
use serde::Serialize;

use crate::dev::{DevArgs, DevError, Summary};
use crate::provision::{Deployment, Origin, ProvisionError};
use crate::runtime::NotQuiet;
use crate::stack::{Session, StackArgs, StackError, confirm};

pub use render::{cost_line, render, render_json};

/// Options of `ripple load`.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    ripple load --orders 100 --rate 10\n  \
    ripple load --orders 1000 --rate 20 --json > load.json\n  \
    RIPPLE_TOKEN=$(cat token) ripple load --stack shop --orders 200 --rate 5 --seed\n\n\
    Without --stack (or with a stack CloudFormation does not have) it runs the local runner in the\n\
    emulator AWS_ENDPOINT_URL names, as `ripple dev`. With --stack naming a deployed stack (in an\n\
    account: no AWS_ENDPOINT_URL, credentials from the standard chain) the orders go to its API\n\
    (the ApiUrl output, or --api) with a customer's token, and are read back from the stack.\n\
    Exits 1 if an invariant fails.")]
pub struct LoadArgs {
    /// Orders to place.
    #[arg(long, default_value_t = 100)]
    pub orders: u32,
    /// Orders placed per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Print one JSON object with the report on stdout, and nothing else.
    #[arg(long)]
    pub json: bool,
    /// The SAM template to run.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
    /// Stack name. A stack CloudFormation deployed is loaded through its API; any other is
    /// provisioned in the emulator under this name for the local runner [default: a fresh
    /// local stack, ripple-load- and six random characters].
    #[arg(long)]
    pub stack: Option<String>,
    /// The API to send the orders to, instead of the deployed stack's `ApiUrl` output.
    #[arg(long, requires = "stack")]
    pub api: Option<String>,
    /// A customer's bearer token for a deployed stack's API (from its issuer: the
    /// `CustomerSignInUrl` output with Cognito, or your own `JwtIssuer`).
    #[arg(long, env = "RIPPLE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Before a deployed load: set the sample catalogue's prices and add its stock, in the
    /// stack's event store (asks first on a terminal).
    #[arg(long)]
    pub seed: bool,
    /// Seed without asking.
    #[arg(long)]
    pub yes: bool,
    /// Leave the stack's resources in the emulator afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Seconds to wait, after the last order, for the pipeline to go quiet.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
}

/// One invariant and whether the run kept it.
#[derive(Debug, Clone, Serialize)]
pub struct Invariant {
    /// What must hold.
    pub name: &'static str,
    /// Whether it held.
    pub holds: bool,
    /// The figures behind it.
    pub detail: String,
}

impl Invariant {
    /// The API accepted every order sent.
    pub fn every_order_accepted(placed: u64, sent: u64) -> Self {
        Invariant {
            name: "every order accepted",
            holds: placed == sent,
            detail: format!("{placed} of {sent} placed"),
        }
    }

    /// No message in a dead-letter queue and no stream batch given up.
    pub fn nothing_dead_lettered(dlq_messages: u64, failure_records: u64) -> Self {
        Invariant {
            name: "nothing dead-lettered or given up",
            holds: dlq_messages == 0 && failure_records == 0,
            detail: format!("{dlq_messages} in DLQs, {failure_records} stream batches given up"),
        }
    }
}

/// What `ripple load` found.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The rate asked for, orders a second.
    pub rate: f64,
    /// The rate achieved while placing, orders a second.
    pub placed_per_second: f64,
    /// The run, as `ripple dev` reports it (usage and cost included).
    pub summary: Summary,
    /// The invariants, each with its figures.
    pub invariants: Vec<Invariant>,
}

impl LoadReport {
    /// Whether every invariant held.
    pub fn holds(&self) -> bool {
        self.invariants.iter().all(|i| i.holds)
    }
}

/// Why `ripple load` could not run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The local run failed.
    #[error(transparent)]
    Dev(#[from] DevError),
    /// The stack could not be opened or found.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// A deployed stack without an API URL.
    #[error("stack {stack} has no ApiUrl output")]
    NoApi {
        /// The stack.
        stack: String,
    },
    /// A deployed stack's API needs a token.
    #[error("a deployed stack's API takes orders only with a customer's token")]
    NoToken,
    /// Seeding was not confirmed.
    #[error("seeding the catalogue of stack {stack}: {why}")]
    NotConfirmed {
        /// The stack.
        stack: String,
        /// Why not.
        why: &'static str,
    },
}

impl LoadError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            LoadError::Dev(e) => e.hint().map(str::to_owned),
            LoadError::Stack(e) => e.hint(),
            LoadError::NoApi { .. } => Some("pass the API's base URL with --api".to_owned()),
            LoadError::NoToken => Some(
                "pass one with --token or RIPPLE_TOKEN: sign a customer in at the stack's CustomerSignInUrl output (Cognito), or get one from the issuer the JwtIssuer parameter names".to_owned(),
            ),
            LoadError::NotConfirmed { .. } => Some("add --yes to seed without asking".to_owned()),
        }
    }
}

/// What `ripple load` found: in the local runner, or on a deployed stack.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Report {
    /// The local runner's run, with its requests and cost.
    Local(Box<LoadReport>),
    /// A deployed stack's run.
    Deployed(Box<deployed::DeployedReport>),
}

impl Report {
    /// The invariants, each with its figures.
    pub fn invariants(&self) -> &[Invariant] {
        match self {
            Report::Local(r) => &r.invariants,
            Report::Deployed(r) => &r.invariants,
        }
    }

    /// Whether every invariant held.
    pub fn holds(&self) -> bool {
        self.invariants().iter().all(|i| i.holds)
    }

    /// The report for people.
    pub fn render(&self) -> String {
        match self {
            Report::Local(r) => render(r),
            Report::Deployed(r) => deployed::render(r),
        }
    }

    /// The report as one JSON object.
    pub fn render_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Runs `ripple load`: on the deployed stack `--stack` names (CloudFormation has it, or `--api`
/// is given), else in the local runner.
pub async fn run_command(args: &LoadArgs) -> Result<(Report, Option<NotQuiet>), LoadError> {
    if let Some(stack) = &args.stack {
        let session = Session::open_operator(&StackArgs {
            stack: stack.clone(),
            template: args.template.clone(),
        })
        .await?;
        match session.lookup().await {
            Ok(deployment)
                if args.api.is_some()
                    || matches!(deployment.origin, Origin::CloudFormation { .. }) =>
            {
                let report = run_deployed(args, &session, &deployment).await?;
                return Ok((Report::Deployed(Box::new(report)), None));
            }
            // The emulator has no such stack yet: the local runner provisions it.
            Err(StackError::Provision(ProvisionError::NotProvisioned { .. }))
                if !session.connection.aws_itself && args.api.is_none() => {}
            Err(err) => return Err(err.into()),
            Ok(_) => {}
        }
    }
    let (report, not_quiet) = run(args).await?;
    Ok((Report::Local(Box::new(report)), not_quiet))
}

async fn run_deployed(
    args: &LoadArgs,
    session: &Session,
    deployment: &Deployment,
) -> Result<deployed::DeployedReport, LoadError> {
    let api = match (&args.api, &deployment.origin) {
        (Some(api), _) => api.clone(),
        (None, Origin::CloudFormation { outputs, .. }) if outputs.contains_key("ApiUrl") => {
            outputs["ApiUrl"].clone()
        }
        _ => {
            return Err(LoadError::NoApi {
                stack: deployment.stack_name.clone(),
            });
        }
    };
    let token = args.token.clone().ok_or(LoadError::NoToken)?;
    let clients = &session.connection.clients;
    if args.seed {
        let stack = deployment.stack_name.clone();
        if !args.yes {
            let question = format!(
                "Set the sample catalogue's prices and add its stock in stack {stack} ({})?",
                deployment.region
            );
            confirm(&question).map_err(|why| LoadError::NotConfirmed {
                stack: stack.clone(),
                why,
            })?;
        }
        if let Some(table) = deployment.events_table() {
            crate::dev::seed(&DynamoEventStore::new(clients.dynamodb.clone(), table)).await?;
        }
    }
    let plan = deployed::Plan {
        api,
        token,
        orders: args.orders,
        rate: args.rate,
        timeout: Duration::from_secs(args.timeout),
        json: args.json || !std::io::stderr().is_terminal(),
    };
    Ok(deployed::run(clients, deployment, &plan).await?)
}

/// Runs `ripple load` in the local runner. `Ok` carries the report even if the pipeline did
/// not go quiet (an invariant then fails, and the caller reports why).
pub async fn run(args: &LoadArgs) -> Result<(LoadReport, Option<NotQuiet>), DevError> {
    let stack = args.stack.clone().unwrap_or_else(|| {
        let suffix: String = (0..6)
            .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
            .collect();
        format!("ripple-load-{suffix}")
    });
    let dev = DevArgs {
        orders: Some(args.orders),
        json: args.json,
        template: args.template.clone(),
        stack: Some(stack),
        keep: args.keep,
        port: 0,
        issuer_port: 0,
        serve: false,
        timeout: args.timeout,
    };
    let (summary, not_quiet) = crate::dev::run_paced(&dev, Some(args.rate)).await?;
    let report = LoadReport {
        rate: args.rate,
        placed_per_second: if summary.placing_ms == 0 {
            0.0
        } else {
            summary.orders_sent as f64 * 1000.0 / summary.placing_ms as f64
        },
        invariants: invariants(&summary),
        summary,
    };
    Ok((report, not_quiet))
}

/// What must hold after every load, read from the store, the queues and the counters.
pub fn invariants(s: &Summary) -> Vec<Invariant> {
    let terminal = s.orders_placed.saturating_sub(s.outcomes.pending);
    let sns = &s.usage.requests;
    let batched = sns.operation("SNS", "PublishBatch").messages;
    let told = sns.operation("SNS", "Publish").messages;
    let dynamodb = sns.service("DynamoDB");
    let writes: u64 = ["PutItem", "TransactWriteItems", "UpdateItem"]
        .iter()
        .map(|op| sns.operation("DynamoDB", op).requests)
        .sum();
    vec![
        Invariant::every_order_accepted(s.orders_placed, s.orders_sent),
        Invariant {
            name: "every order terminal",
            holds: s.outcomes.pending == 0 && s.quiet,
            detail: format!(
                "{} pending; pipeline {}",
                s.outcomes.pending,
                if s.quiet { "quiet" } else { "still busy" }
            ),
        },
        Invariant {
            name: "stock conserved",
            holds: s.stock_conserved,
            detail: "seeded = available + on confirmed orders, for every sku".to_owned(),
        },
        Invariant {
            name: "every stored event published",
            holds: s.events_published >= s.events_stored,
            detail: format!(
                "{} stored, {} published",
                s.events_stored, s.events_published
            ),
        },
        Invariant {
            name: "SNS accepted what the outbox published",
            holds: batched == s.events_published,
            detail: format!(
                "{batched} messages in PublishBatch, {} stream records published",
                s.events_published
            ),
        },
        Invariant {
            name: "one customer message per terminal order",
            holds: told == terminal,
            detail: format!("{told} published, {terminal} orders terminal"),
        },
        Invariant {
            name: "every order wrote to DynamoDB",
            holds: writes >= s.orders_placed && dynamodb.write_units > 0.0,
            detail: format!(
                "{writes} writes, {:.1} WRU for {} orders",
                dynamodb.write_units, s.orders_placed
            ),
        },
        Invariant::nothing_dead_lettered(s.dlq_messages, s.failure_records),
    ]
}
