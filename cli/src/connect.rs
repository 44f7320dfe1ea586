//! Connecting, the first step of every command: the SDK configuration from the environment, with
//! its region and credentials checked (a shell opened for LocalStack often has neither). The
//! commands that create resources ([`connect`]: `dev`, `up`, `invoke`, `soak`, `load`) need an
//! endpoint override, since the runner never creates resources in a real account, and check the
//! emulator answers before anything is created; the operator's commands ([`connect_operator`]:
//! `status`, `dlq`, `replay`, `history`, `republish`) work on a deployed stack in an account too.

use std::path::{Path, PathBuf};

use aws_config::SdkConfig;
use aws_sdk_dynamodb::config::{
    Credentials, ProvideCredentials, Region, SharedCredentialsProvider,
};

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
    /// No region is configured and the endpoint is not on this machine.
    #[error("no AWS region: none is set for {place}")]
    NoRegion {
        /// Where the commands would go: an emulator elsewhere, or AWS.
        place: Place,
    },
    /// No credentials are configured and the endpoint is not on this machine.
    #[error("no AWS credentials for {place}: {reason}")]
    NoCredentials {
        /// Where the commands would go: an emulator elsewhere, or AWS.
        place: Place,
        /// What the SDK's credential chain said.
        reason: String,
    },
    /// The emulator does not answer.
    #[error("the AWS emulator is not reachable")]
    Unreachable(#[source] ProvisionError),
}

impl ConnectError {
    /// What to do about it.
    pub fn hint(&self) -> &'static str {
        match self {
            ConnectError::NoEndpoint | ConnectError::Unreachable(_) => EMULATOR_HINT,
            ConnectError::NoRegion { .. } => {
                "set one: export AWS_REGION=us-east-1 (or AWS_PROFILE naming a profile with a region)"
            }
            ConnectError::NoCredentials {
                place: Place::Emulator(_),
                ..
            } => {
                "set them: export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test (what LocalStack and moto accept), or AWS_PROFILE"
            }
            ConnectError::NoCredentials {
                place: Place::Aws, ..
            } => {
                "set them: export AWS_PROFILE=<a profile with keys or a role to assume>, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (for an SSO profile: eval \"$(aws configure export-credentials --format env)\")"
            }
        }
    }
}

/// Where a command's requests go, when they have no region or credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// An emulator that is not on this machine.
    Emulator(String),
    /// AWS itself: no endpoint override is set.
    Aws,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Emulator(endpoint) => write!(f, "the emulator at {endpoint}"),
            Place::Aws => f.write_str("AWS (no AWS_ENDPOINT_URL is set)"),
        }
    }
}

/// The region a local emulator is given when none is set.
const LOCAL_REGION: &str = "us-east-1";

/// What `connect` filled in for an emulator on this machine, since no region or credentials were
/// set: LocalStack's and moto's conventional ones.
#[derive(Debug, Default, PartialEq, Eq)]
struct Assumed {
    region: bool,
    credentials: bool,
}

/// The SDK configuration and clients of a reachable emulator.
#[derive(Debug, Clone)]
pub struct Connection {
    /// The SDK configuration (endpoints, region, credentials from the environment).
    pub aws: SdkConfig,
    /// Clients for every service the runner uses.
    pub clients: Clients,
    /// Whether the requests go to AWS itself (no endpoint override): only a stack CloudFormation
    /// deployed is looked for there.
    pub aws_itself: bool,
}

/// Connects to the emulator `AWS_ENDPOINT_URL` (or a per-service variant) points at.
pub async fn connect() -> Result<Connection, ConnectError> {
    if endpoints().is_empty() {
        return Err(ConnectError::NoEndpoint);
    }
    let aws = with_region_and_credentials(ripple_kit::config::load_sdk_config().await).await?;
    let clients = Clients::new(&aws);
    provision::check_reachable(&clients)
        .await
        .map_err(ConnectError::Unreachable)?;
    Ok(Connection {
        aws,
        clients,
        aws_itself: false,
    })
}

/// Connects for an operator's command: to the emulator `AWS_ENDPOINT_URL` points at, as
/// [`connect`] does, or without an endpoint override to AWS itself, with the region and
/// credentials of the standard chain (`AWS_PROFILE`, SSO, environment, instance role).
pub async fn connect_operator() -> Result<Connection, ConnectError> {
    if !endpoints().is_empty() {
        return connect().await;
    }
    let aws = with_region_and_credentials(ripple_kit::config::load_sdk_config().await).await?;
    let clients = Clients::new(&aws);
    Ok(Connection {
        aws,
        clients,
        aws_itself: true,
    })
}

/// The endpoint overrides set: `AWS_ENDPOINT_URL` and its per-service variants.
fn endpoints() -> Vec<String> {
    std::env::vars()
        .filter(|(k, v)| k.starts_with("AWS_ENDPOINT_URL") && !v.is_empty())
        .map(|(_, v)| v)
        .collect()
}

/// `aws` with a region and credentials: its own, or for an emulator on this machine the
/// conventional ones (said in a log line); for one elsewhere, an error naming what is missing.
async fn with_region_and_credentials(aws: SdkConfig) -> Result<SdkConfig, ConnectError> {
    let endpoints = endpoints();
    let credentials = match aws.credentials_provider() {
        None => Err("no credential provider is configured".to_owned()),
        Some(provider) => provider
            .provide_credentials()
            .await
            .map(drop)
            .map_err(|e| ripple_kit::telemetry::error_chain(&e)),
    };
    let assumed = assume(&endpoints, aws.region().is_some(), credentials)?;
    let mut builder = aws.to_builder();
    if assumed.region {
        tracing::info!("no AWS region set; the local emulator is used in {LOCAL_REGION}");
        builder.set_region(Some(Region::new(LOCAL_REGION)));
    }
    if assumed.credentials {
        tracing::info!("no AWS credentials set; the local emulator is called as test/test");
        builder.set_credentials_provider(Some(SharedCredentialsProvider::new(Credentials::new(
            "test",
            "test",
            None,
            None,
            "ripple-local",
        ))));
    }
    Ok(builder.build())
}

/// What to fill in, given the endpoints, whether a region is set and what the credential chain
/// gave: only an emulator on this machine may be given the conventional region and credentials;
/// AWS itself (no endpoint) and an emulator elsewhere need their own.
fn assume(
    endpoints: &[String],
    region: bool,
    credentials: Result<(), String>,
) -> Result<Assumed, ConnectError> {
    let remote = match endpoints.iter().find(|e| !is_local(e)) {
        Some(endpoint) => Some(Place::Emulator(endpoint.clone())),
        None if endpoints.is_empty() => Some(Place::Aws),
        None => None,
    };
    match (remote, region, credentials) {
        (Some(place), false, _) => Err(ConnectError::NoRegion { place }),
        (Some(place), true, Err(reason)) => Err(ConnectError::NoCredentials { place, reason }),
        (_, region, credentials) => Ok(Assumed {
            region: !region,
            credentials: credentials.is_err(),
        }),
    }
}

/// Whether `endpoint` is on this machine (loopback, or LocalStack's name for it).
fn is_local(endpoint: &str) -> bool {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "localhost.localstack.cloud"
        || host.ends_with(".localhost.localstack.cloud")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoints(list: &[&str]) -> Vec<String> {
        list.iter().map(|e| (*e).to_owned()).collect()
    }

    #[test]
    fn an_emulator_on_this_machine_gets_the_conventional_region_and_credentials() {
        let local = endpoints(&["http://127.0.0.1:4566", "http://localhost:8000"]);
        let assumed = assume(&local, false, Err("no provider".into())).unwrap();
        assert_eq!(
            assumed,
            Assumed {
                region: true,
                credentials: true
            }
        );
        assert_eq!(assume(&local, true, Ok(())).unwrap(), Assumed::default());
    }

    #[test]
    fn an_emulator_elsewhere_without_a_region_or_credentials_says_which_is_missing() {
        let remote = endpoints(&["http://127.0.0.1:8000", "http://emulator.internal:4566"]);
        let no_region = assume(&remote, false, Ok(())).unwrap_err();
        assert!(matches!(no_region, ConnectError::NoRegion { .. }));
        assert!(no_region.to_string().contains("no AWS region"));
        assert!(no_region.hint().contains("AWS_REGION"));
        let no_credentials = assume(&remote, true, Err("the chain found none".into())).unwrap_err();
        assert!(
            no_credentials
                .to_string()
                .contains("no AWS credentials for the emulator at http://emulator.internal:4566: the chain found none")
        );
        assert!(no_credentials.hint().contains("AWS_ACCESS_KEY_ID"));
    }

    #[test]
    fn aws_itself_without_a_region_or_credentials_says_which_is_missing_and_assumes_nothing() {
        let no_region = assume(&[], false, Err("none".into())).unwrap_err();
        assert_eq!(
            no_region.to_string(),
            "no AWS region: none is set for AWS (no AWS_ENDPOINT_URL is set)"
        );
        let no_credentials = assume(&[], true, Err("no profile".into())).unwrap_err();
        assert_eq!(
            no_credentials.to_string(),
            "no AWS credentials for AWS (no AWS_ENDPOINT_URL is set): no profile"
        );
        assert!(no_credentials.hint().contains("AWS_PROFILE"));
        assert!(
            !no_credentials.hint().contains("=test"),
            "no test credentials for AWS"
        );
        assert_eq!(assume(&[], true, Ok(())).unwrap(), Assumed::default());
    }

    #[test]
    fn local_means_loopback_or_localstacks_own_name() {
        for local in [
            "http://127.0.0.1:4566",
            "http://localhost:4566/",
            "https://localhost.localstack.cloud:4566",
            "http://s3.localhost.localstack.cloud:4566",
            "http://[::1]:8000",
            "127.0.0.2:8000",
        ] {
            assert!(is_local(local), "{local}");
        }
        for remote in [
            "http://10.0.0.5:4566",
            "https://dynamodb.us-east-1.amazonaws.com",
            "http://localhost.example.com:4566",
        ] {
            assert!(!is_local(remote), "{remote}");
        }
    }
}
