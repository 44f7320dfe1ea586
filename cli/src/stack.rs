//! `ripple up`, `ripple env` and `ripple down`: a stack of the template that outlives one
//! command, for tools that run a function on their own (`ripple invoke`, `cargo lambda watch`,
//! a debugger) and need the resources its environment names.
//!
//! `up` provisions the stack (again is fine: every step is idempotent), `env` prints a
//! function's resolved environment from what exists, `down` deletes it all. `ripple dev --keep`
//! leaves the same stack behind, under the same names.
//!
//! The operator's commands open their stack with [`Session::open_operator`]: in an emulator,
//! one CloudFormation deployed there or else one the runner provisioned; in an account (no
//! `AWS_ENDPOINT_URL`), only a stack CloudFormation deployed, found by its physical ids.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use crate::connect::{
    ConnectError, Connection, DEFAULT_STACK, connect, connect_operator, template_path,
};
use crate::provision::{self, DeployedFunction, Deployment, Find, Origin, ProvisionError};
use crate::template::{Template, TemplateError};

/// Which stack of which template.
#[derive(Debug, Clone, clap::Args)]
pub struct StackArgs {
    /// Stack name: one CloudFormation deployed (found by its physical ids), or the prefix of
    /// every resource of one ripple provisioned in the emulator.
    #[arg(long, default_value = DEFAULT_STACK)]
    pub stack: String,
    /// The SAM template.
    #[arg(long, default_value = "template.yaml")]
    pub template: PathBuf,
}

/// Options of `ripple env`.
#[derive(Debug, Clone, clap::Args)]
pub struct EnvArgs {
    /// The function: its logical id (OrdersApiFunction) or its binary (orders-api).
    pub function: String,
    /// The stack.
    #[command(flatten)]
    pub stack: StackArgs,
}

/// Why a stack command failed.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// There is no emulator to talk to.
    #[error("cannot connect")]
    Connect(#[from] ConnectError),
    /// The template could not be read.
    #[error("cannot use the template")]
    Template(#[from] TemplateError),
    /// Provisioning, finding or deleting the stack failed.
    #[error("stack")]
    Provision(#[from] ProvisionError),
    /// `ripple down` was asked to delete a stack CloudFormation manages.
    #[error(
        "stack {stack} was deployed by CloudFormation; ripple down deletes only what ripple provisioned"
    )]
    Deployed {
        /// The stack name.
        stack: String,
    },
    /// The template has no such function.
    #[error("the template has no function {name} (its functions: {known})")]
    UnknownFunction {
        /// The name asked for.
        name: String,
        /// The logical ids and binaries it has.
        known: String,
    },
}

impl StackError {
    /// What to do about it, when there is something to do.
    pub fn hint(&self) -> Option<String> {
        match self {
            StackError::Connect(e) => Some(e.hint().to_owned()),
            StackError::Provision(ProvisionError::NotProvisioned { stack, .. }) => Some(format!(
                "provision it with `ripple up --stack {stack}` (or keep one with `ripple dev --keep --stack {stack}`)"
            )),
            StackError::Provision(ProvisionError::NotDeployed { stack, .. }) => Some(format!(
                "check the name and region (`aws cloudformation describe-stacks --stack-name {stack}`, AWS_REGION or AWS_PROFILE), or deploy it: `make deploy` (sam deploy --guided --stack-name {stack})"
            )),
            StackError::Deployed { stack } => {
                Some(format!("delete it with `sam delete --stack-name {stack}`"))
            }
            _ => None,
        }
    }
}

/// A stack of the template and a connection to the emulator it lives in.
pub struct Session {
    /// The emulator.
    pub connection: Connection,
    /// The template.
    pub template: Template,
    /// The stack's name.
    pub stack_name: String,
}

impl Session {
    /// Connects to the emulator and reads the template.
    pub async fn open(args: &StackArgs) -> Result<Self, StackError> {
        Self::with(connect().await?, args)
    }

    /// Connects to the emulator, or to AWS itself when no endpoint is set, and reads the
    /// template: for the commands that operate a stack someone deployed.
    pub async fn open_operator(args: &StackArgs) -> Result<Self, StackError> {
        Self::with(connect_operator().await?, args)
    }

    fn with(connection: Connection, args: &StackArgs) -> Result<Self, StackError> {
        let template = Template::from_file(template_path(&args.template))?;
        Ok(Session {
            connection,
            template,
            stack_name: args.stack.clone(),
        })
    }

    /// Provisions the stack, or brings it up to what the template declares.
    pub async fn provision(&self) -> Result<Deployment, StackError> {
        let aws = &self.connection.aws;
        Ok(provision::provision(aws, &self.template, &self.stack_name).await?)
    }

    /// The stack as it exists: deployed by CloudFormation, or (in an emulator) provisioned by
    /// the runner; [`ProvisionError::NotProvisioned`] or [`ProvisionError::NotDeployed`] if
    /// it does not.
    pub async fn lookup(&self) -> Result<Deployment, StackError> {
        let Connection {
            aws,
            clients,
            aws_itself,
        } = &self.connection;
        let scope = if *aws_itself {
            Find::CloudFormation
        } else {
            Find::Anywhere
        };
        let pseudo = provision::pseudo(aws, &self.stack_name);
        Ok(provision::find(clients, &self.template, &pseudo, scope).await?)
    }

    /// The stack as it exists, provisioned first if it does not.
    pub async fn lookup_or_provision(&self) -> Result<Deployment, StackError> {
        match self.lookup().await {
            Err(StackError::Provision(ProvisionError::NotProvisioned { resource, .. })) => {
                tracing::info!(stack = %self.stack_name, missing = %resource, "provisioning the stack");
                self.provision().await
            }
            found => found,
        }
    }
}

/// Asks `question` on the terminal; anywhere else (a script, CI) the answer is no: a command
/// that changes something needs `--yes` there.
pub fn confirm(question: &str) -> Result<(), &'static str> {
    if !std::io::stdin().is_terminal() {
        return Err("not a terminal, and no --yes");
    }
    eprint!("{question} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    if matches!(answer.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        Err("not confirmed")
    }
}

/// `ripple up`: provisions the stack and describes what it holds.
pub async fn up(args: &StackArgs) -> Result<String, StackError> {
    let deployment = Session::open(args).await?.provision().await?;
    Ok(describe(&deployment))
}

/// `ripple env`: the variables the template gives the function, resolved for the stack, as
/// `KEY=VALUE` lines (what `cargo lambda watch --env-file` reads).
pub async fn env(args: &EnvArgs) -> Result<String, StackError> {
    let deployment = Session::open(&args.stack).await?.lookup().await?;
    let function = function(&deployment, &args.function)?;
    let mut out = String::new();
    for (key, value) in function.template_environment() {
        let _ = writeln!(out, "{key}={value}");
    }
    Ok(out)
}

/// `ripple down`: deletes everything the stack holds.
pub async fn down(args: &StackArgs) -> Result<(), StackError> {
    let session = Session::open(args).await?;
    let deployment = session.lookup().await?;
    if let Origin::CloudFormation { .. } = deployment.origin {
        return Err(StackError::Deployed {
            stack: deployment.stack_name,
        });
    }
    provision::teardown_with(&session.connection.clients, &deployment).await?;
    Ok(())
}

/// The function `name` names: its logical id or its binary.
pub fn function<'d>(
    deployment: &'d Deployment,
    name: &str,
) -> Result<&'d DeployedFunction, StackError> {
    deployment
        .function_named(name)
        .ok_or_else(|| StackError::UnknownFunction {
            name: name.to_owned(),
            known: deployment
                .functions
                .values()
                .map(|f| format!("{} ({})", f.logical_id, f.binary))
                .collect::<Vec<_>>()
                .join(", "),
        })
}

/// What the stack holds, one resource a line, for people.
pub fn describe(deployment: &Deployment) -> String {
    let mut lines: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for table in deployment.tables.values() {
        lines.entry("table").or_default().push(table.name.clone());
    }
    for topic in deployment.topics.values() {
        lines.entry("topic").or_default().push(topic.arn.clone());
    }
    for queue in deployment.queues.values() {
        lines.entry("queue").or_default().push(queue.url.clone());
    }
    for function in deployment.functions.values() {
        let line = format!("{} ({})", function.logical_id, function.binary);
        lines.entry("function").or_default().push(line);
    }
    let mut out = format!(
        "stack {} in {}{}\n",
        deployment.stack_name,
        deployment.region,
        origin(&deployment.origin)
    );
    for (kind, names) in lines {
        for name in names {
            let _ = writeln!(out, "  {kind:<9} {name}");
        }
    }
    out
}

/// How the stack was found, for the first line of a description: nothing for one the runner
/// provisioned, its CloudFormation status for a deployed one.
pub fn origin(origin: &Origin) -> String {
    match origin {
        Origin::Ripple => String::new(),
        Origin::CloudFormation { status, .. } => format!(" (CloudFormation, {status})"),
    }
}
