//! Configuration: environment variables read through one lookup, and the AWS SDK config built once.
//!
//! Every function reads its settings through [`Env`], so the same `Config` struct can be filled from
//! the process environment in Lambda and from a map in the local runner or a test.

use std::str::FromStr;

use crate::batch::RedeliveryBackoff;

#[cfg(feature = "aws")]
use aws_config::{BehaviorVersion, SdkConfig};

/// A setting that is missing or malformed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A required variable is not set (or is empty).
    #[error("environment variable {0} is not set")]
    Missing(String),
    /// A variable is set but cannot be parsed.
    #[error("environment variable {key}={value:?} is invalid: {reason}")]
    Invalid {
        /// The variable's name.
        key: String,
        /// The value found.
        value: String,
        /// Why it was rejected.
        reason: String,
    },
}

/// Reads settings through a lookup function (the process environment or a map).
pub struct Env<F> {
    lookup: F,
}

impl Env<fn(&str) -> Option<String>> {
    /// Settings from the process environment.
    pub fn process() -> Self {
        Env {
            lookup: process_env,
        }
    }
}

/// A variable of the process environment, if it is set (to valid Unicode): the lookup functions
/// use in Lambda, e.g. `Config::from_lookup(process_env)`.
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

impl<F: Fn(&str) -> Option<String>> Env<F> {
    /// Settings from any lookup, e.g. a map of the variables a template gives one function.
    pub fn new(lookup: F) -> Self {
        Env { lookup }
    }

    /// A variable that must be set and non-empty.
    pub fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.optional(key)
            .ok_or_else(|| ConfigError::Missing(key.to_owned()))
    }

    /// A variable that may be absent; an empty value counts as absent.
    pub fn optional(&self, key: &str) -> Option<String> {
        (self.lookup)(key).filter(|value| !value.trim().is_empty())
    }

    /// A variable parsed into `T`, or `default` when it is absent.
    pub fn parsed_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.optional(key) {
            None => Ok(default),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|err: T::Err| ConfigError::Invalid {
                    key: key.to_owned(),
                    reason: err.to_string(),
                    value,
                }),
        }
    }
}

/// Declares a function's settings: a struct of required variables and its `from_lookup`.
///
/// Each field names the variable it is read from; all are required and non-empty. A function with
/// optional or parsed settings writes its `from_lookup` by hand over [`Env`].
///
/// ```
/// ripple_kit::settings! {
///     /// Settings, from the variables template.yaml gives this function.
///     pub struct Config {
///         /// The events table.
///         events_table: "EVENTS_TABLE",
///         /// The topic it publishes to.
///         topic_arn: "TOPIC_ARN",
///     }
/// }
///
/// let config = Config::from_lookup(|key| Some(key.to_lowercase()))?;
/// assert_eq!(config.topic_arn, "topic_arn");
/// let missing = Config::from_lookup(|key| (key == "EVENTS_TABLE").then(|| "events".to_owned()));
/// assert_eq!(missing.unwrap_err().to_string(), "environment variable TOPIC_ARN is not set");
/// # Ok::<(), ripple_kit::config::ConfigError>(())
/// ```
#[macro_export]
macro_rules! settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$field_meta:meta])* $field:ident: $variable:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        $vis struct $name {
            $( $(#[$field_meta])* pub $field: String, )+
        }

        impl $name {
            /// From any lookup: `ripple_kit::config::process_env` in Lambda, the template's variables
            /// in the local runner.
            pub fn from_lookup(
                get: impl Fn(&str) -> Option<String>,
            ) -> Result<Self, $crate::config::ConfigError> {
                let env = $crate::config::Env::new(get);
                Ok($name {
                    $( $field: env.required($variable)?, )+
                })
            }
        }
    };
}

/// The settings of a queue consumer whose only resource is its event store: the table, and how
/// its failed messages back off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventStoreConfig {
    /// The events table (`EVENTS_TABLE`).
    pub events_table: String,
    /// `REDELIVERY_BASE_SECONDS` and `REDELIVERY_CAP_SECONDS` (see [`RedeliveryBackoff::from_env`]).
    pub redelivery: RedeliveryBackoff,
}

impl EventStoreConfig {
    /// From any lookup: [`process_env`] in Lambda, the template's variables in the local runner.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        Ok(EventStoreConfig {
            events_table: env.required("EVENTS_TABLE")?,
            redelivery: RedeliveryBackoff::from_env(&env)?,
        })
    }
}

#[cfg(feature = "aws")]
/// Loads the AWS SDK configuration once per execution environment.
///
/// Region, credentials and endpoints come from the usual sources, so `AWS_ENDPOINT_URL` and the
/// per-service `AWS_ENDPOINT_URL_DYNAMODB` / `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` point every client
/// at an emulator without the code knowing. The HTTP client is the kit's ([`crate::https`]):
/// HTTP/1.1 on hyper, rustls on `ring` with the system's root certificates.
pub async fn load_sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(crate::https::http_client())
        .load()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> Env<impl Fn(&str) -> Option<String>> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Env::new(move |key| map.get(key).cloned())
    }

    #[test]
    fn required_reports_the_missing_name() {
        let env = env(&[("EMPTY", " ")]);
        assert_eq!(
            env.required("EVENTS_TABLE"),
            Err(ConfigError::Missing("EVENTS_TABLE".into()))
        );
        assert_eq!(
            env.required("EMPTY"),
            Err(ConfigError::Missing("EMPTY".into()))
        );
    }

    #[test]
    fn parsed_or_uses_the_default_and_rejects_garbage() {
        let env = env(&[("N", "7"), ("BAD", "seven")]);
        assert_eq!(env.parsed_or("N", 1u32), Ok(7));
        assert_eq!(env.parsed_or("ABSENT", 1u32), Ok(1));
        assert!(matches!(
            env.parsed_or("BAD", 1u32),
            Err(ConfigError::Invalid { key, .. }) if key == "BAD"
        ));
    }
}
