//! The registry: which Rust handler runs a template function, found by its binary name.
//!
//! Every function crate exposes the same shape (`Config::from_lookup`, `handler(config, aws)`,
//! and the handler's `handle`), so one line per crate registers it. The handler is built from the
//! function's resolved template environment, never from this process's environment, so two
//! stacks can run side by side in one test process.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use aws_config::SdkConfig;
use ripple_kit::config::ConfigError;
use ripple_kit::store::DynamoEventStore;

use crate::provision::Deployment;
use crate::runtime::{Invoke, invoke_fn};

/// Why a function could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FunctionsError {
    /// The template names a binary this runner was not built with.
    #[error(
        "{function}: no handler is registered for binary `{binary}` (known: {known}); add it to cli/src/functions.rs"
    )]
    Unregistered {
        /// The function's logical id.
        function: String,
        /// Its binary name.
        binary: String,
        /// The binaries the runner knows.
        known: String,
    },
    /// The function's configuration is incomplete.
    #[error("{function}: its environment is incomplete")]
    Config {
        /// The function's logical id or binary.
        function: String,
        /// What is missing.
        #[source]
        source: ConfigError,
    },
}

/// Builds a function's handler from its environment.
pub type Build = fn(&BTreeMap<String, String>, &SdkConfig) -> Result<Invoke, ConfigError>;

/// Registers `crate` under its binary name: `Config::from_lookup` → `handler` → `handle`.
macro_rules! registered {
    ($($binary:literal => $krate:ident),+ $(,)?) => {
        &[$(($binary, {
            fn build(env: &BTreeMap<String, String>, aws: &SdkConfig) -> Result<Invoke, ConfigError> {
                let config = $krate::Config::from_lookup(|key| env.get(key).cloned())?;
                let handler = Arc::new($krate::handler(config, aws));
                Ok(invoke_fn(move |event| {
                    let handler = handler.clone();
                    async move { handler.handle(event).await }
                }))
            }
            build as Build
        })),+]
    };
}

/// Every function this runner can run, by binary name.
pub const REGISTRY: &[(&str, Build)] = registered! {
    "orders-api" => orders_api,
    "outbox-publisher" => outbox_publisher,
    "inventory" => inventory,
    "payments" => payments,
    "order-saga" => order_saga,
    "projections" => projections,
    "notifications" => notifications,
    "sweeper" => sweeper,
};

/// The binaries the runner knows.
pub fn known_binaries() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|(binary, _)| *binary)
}

/// The handler for `binary`, configured from `environment`.
pub fn invoke_for(
    function: &str,
    binary: &str,
    environment: &BTreeMap<String, String>,
    aws: &SdkConfig,
) -> Result<Invoke, FunctionsError> {
    let build = REGISTRY
        .iter()
        .find(|(name, _)| *name == binary)
        .map(|(_, build)| build)
        .ok_or_else(|| FunctionsError::Unregistered {
            function: function.to_owned(),
            binary: binary.to_owned(),
            known: known_binaries().collect::<Vec<_>>().join(", "),
        })?;
    build(environment, aws).map_err(|source| FunctionsError::Config {
        function: function.to_owned(),
        source,
    })
}

/// Handlers for every function of the deployment, by logical id; an unknown binary is an error.
pub fn handlers(
    deployment: &Deployment,
    aws: &SdkConfig,
) -> Result<HashMap<String, Invoke>, FunctionsError> {
    deployment
        .functions
        .values()
        .map(|f| {
            Ok((
                f.logical_id.clone(),
                invoke_for(&f.logical_id, &f.binary, &f.environment, aws)?,
            ))
        })
        .collect()
}

/// Handlers for the functions of the deployment built from `binaries` (tests run a subset).
pub fn handlers_for(
    deployment: &Deployment,
    aws: &SdkConfig,
    binaries: &[&str],
) -> Result<HashMap<String, Invoke>, FunctionsError> {
    deployment
        .functions
        .values()
        .filter(|f| binaries.contains(&f.binary.as_str()))
        .map(|f| {
            Ok((
                f.logical_id.clone(),
                invoke_for(&f.logical_id, &f.binary, &f.environment, aws)?,
            ))
        })
        .collect()
}

/// The event store inventory writes to in a deployment, for operator actions such as seeding
/// stock.
pub fn inventory_store(
    deployment: &Deployment,
    aws: &SdkConfig,
) -> Result<DynamoEventStore, FunctionsError> {
    let function =
        deployment
            .function_by_binary("inventory")
            .ok_or_else(|| FunctionsError::Unregistered {
                function: "(none)".to_owned(),
                binary: "inventory".to_owned(),
                known: "the template has no function with binary inventory".to_owned(),
            })?;
    let config = inventory::Config::from_lookup(|key| function.environment.get(key).cloned())
        .map_err(|source| FunctionsError::Config {
            function: function.logical_id.clone(),
            source,
        })?;
    Ok(DynamoEventStore::new(
        aws_sdk_dynamodb::Client::new(aws),
        config.events_table,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_of_the_template_is_registered() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml");
        let template = crate::template::Template::from_file(path).unwrap();
        let stack = template
            .stack(crate::template::PseudoParameters::new("t", "us-east-1"))
            .unwrap();
        for function in &stack.functions {
            assert!(
                known_binaries().any(|b| b == function.binary),
                "{} ({}) is not registered",
                function.logical_id,
                function.binary
            );
        }
    }

    #[test]
    fn an_unknown_binary_is_a_clear_error() {
        let aws = SdkConfig::builder().build();
        let err = invoke_for("F", "nope", &BTreeMap::new(), &aws)
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(
            text.contains("nope") && text.contains("orders-api"),
            "{text}"
        );
    }

    #[test]
    fn a_missing_variable_names_the_function() {
        let aws = SdkConfig::builder().build();
        let err = invoke_for("InventoryFunction", "inventory", &BTreeMap::new(), &aws)
            .err()
            .unwrap();
        assert!(
            matches!(err, FunctionsError::Config { ref function, .. } if function == "InventoryFunction")
        );
    }
}
