//! Connecting to the emulator, the first step of every command: the SDK configuration from the
//! environment, refused without an endpoint override (the runner never creates resources in a
//! real account), and checked to answer before anything is created.

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;

use crate::provision::{self, Clients, ProvisionError};

/// The stack `ripple up`, `env`, `invoke` and `down` use, and the one `ripple dev --keep` keeps,
/// unless told otherwise.
pub const DEFAULT_STACK: &str = "ripple";

/// What to do when there is no emulator to talk to.
pub const EMULATOR_HINT: &str = "run it through `make` (make dev, make invoke), which starts the local emulators and points ripple at them, or start them yourself:\n  \
     bash tests/emulator/emulator.sh up && eval \"$(bash tests/emulator/emulator.sh env)\"";

/// Why there is no emulator to talk to.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No endpoint override is configured.
    #[error(
        "no emulator endpoint: AWS_ENDPOINT_URL is not set, and ripple does not create resources in a real account"
    )]
    NoEndpoint,
    /// The emulator does not answer.
    #[error("the AWS emulator is not reachable")]
    Unreachable(#[source] ProvisionError),
}

/// The SDK configuration and clients of a reachable emulator.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The SDK configuration (endpoints, region, credentials from the environment).
    pub aws: SdkConfig,
    /// Clients for every service the runner uses.
    pub clients: Clients,
}

/// Connects to the emulator `AWS_ENDPOINT_URL` (or a per-service variant) points at.
pub async fn connect() -> Result<Connection, ConnectError> {
    let endpoint_set =
        std::env::vars().any(|(k, v)| k.starts_with("AWS_ENDPOINT_URL") && !v.is_empty());
    if !endpoint_set {
        return Err(ConnectError::NoEndpoint);
    }
    let aws = ripple_kit::config::load_sdk_config().await;
    let clients = Clients::new(&aws);
    provision::check_reachable(&clients)
        .await
        .map_err(ConnectError::Unreachable)?;
    Ok(Connection { aws, clients })
}

/// `path`, or the project's template when the default `template.yaml` is not in the current
/// directory: `cargo run -p ripple` from anywhere in the checkout still finds it.
pub fn template_path(path: &Path) -> PathBuf {
    if path == Path::new("template.yaml") && !path.exists() {
        let fallback = Path::new(env!("CARGO_MANIFEST_DIR")).join("../template.yaml");
        if fallback.exists() {
            return fallback;
        }
    }
    path.to_owned()
}
