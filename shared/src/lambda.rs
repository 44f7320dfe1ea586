//! Start-up of a function's execution environment, what every `main` does before it serves.
//!
//! ```no_run
//! # mod inventory {
//! #     pub struct Config;
//! #     impl Config {
//! #         pub fn from_lookup(_: impl Fn(&str) -> Option<String>) -> Result<Self, ripple_kit::config::ConfigError> { Ok(Config) }
//! #     }
//! #     pub struct Handler;
//! #     impl Handler {
//! #         pub fn new(_: Config, _: &aws_config::SdkConfig) -> Self { Handler }
//! #         pub async fn handle(&self, _: lambda_runtime::LambdaEvent<serde_json::Value>) -> Result<(), lambda_runtime::Error> { Ok(()) }
//! #     }
//! # }
//! use inventory::{Config, Handler};
//! use lambda_runtime::{Error, service_fn};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Error> {
//!     let handler = ripple_kit::lambda::init(Config::from_lookup, Handler::new).await?;
//!     lambda_runtime::run(service_fn(|event| handler.handle(event))).await
//! }
//! ```

use aws_config::SdkConfig;

use crate::config::{ConfigError, load_sdk_config, process_env};
use crate::telemetry::init_tracing;
#[cfg(feature = "store-dynamodb")]
use crate::{
    batch::RedeliveryBackoff,
    config::{Env, EventStoreConfig},
    consumer::{Reactor, SqsConsumer},
    store::DynamoEventStore,
};

/// Cold start: installs the JSON log subscriber, reads the function's settings from the process
/// environment with `from_lookup` (its `Config::from_lookup`), loads the AWS SDK config, and
/// builds the handler from both with `new` (its `Handler::new`), once per execution environment.
///
/// Missing or malformed settings fail here, before any client is built.
pub async fn init<C, H>(
    from_lookup: impl FnOnce(fn(&str) -> Option<String>) -> Result<C, ConfigError>,
    new: impl FnOnce(C, &SdkConfig) -> H,
) -> Result<H, ConfigError> {
    init_tracing();
    let config = from_lookup(process_env)?;
    let aws = load_sdk_config().await;
    Ok(new(config, &aws))
}

/// The whole `main` of an event-sourced consumer: serves `reactor` behind its SQS queue, over
/// the DynamoDB event store whose table the environment variable `events_table` names (failed
/// messages back off as [`SqsConsumer::on_dynamodb`] says).
///
/// ```no_run
/// # struct Points;
/// # impl<S: ripple_kit::EventStore> ripple_kit::Reactor<S> for Points {
/// #     const NAME: &'static str = "points";
/// #     const SOURCE: &'static str = "shop/points";
/// #     type Input = ();
/// #     type Error = std::convert::Infallible;
/// #     fn input(&self, _: &ripple_kit::Envelope) -> Result<Option<()>, ripple_kit::envelope::EnvelopeError> { Ok(None) }
/// #     async fn react(&self, _: &S, _: &(), _: &ripple_kit::consumer::Delivery<'_>) -> Result<ripple_kit::Reaction, ripple_kit::ConsumerError> { Ok(ripple_kit::Reaction::Ignored) }
/// # }
/// #[tokio::main]
/// async fn main() -> Result<(), lambda_runtime::Error> {
///     ripple_kit::lambda::run_reactor(Points, "EVENTS_TABLE").await
/// }
/// ```
#[cfg(feature = "store-dynamodb")]
pub async fn run_reactor<R>(reactor: R, events_table: &str) -> Result<(), lambda_runtime::Error>
where
    R: Reactor<DynamoEventStore> + 'static,
{
    init_tracing();
    let env = Env::process();
    let config = EventStoreConfig {
        events_table: env.required(events_table)?,
        redelivery: RedeliveryBackoff::from_env(&env)?,
    };
    let aws = load_sdk_config().await;
    let handler = SqsConsumer::on_dynamodb(reactor, config, &aws);
    lambda_runtime::run(lambda_runtime::service_fn(|event| handler.handle(event))).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_missing_setting_fails_before_the_handler_is_built() {
        let from_lookup = |lookup: fn(&str) -> Option<String>| {
            lookup("RIPPLE_TEST_SURELY_UNSET_VARIABLE")
                .ok_or_else(|| ConfigError::Missing("RIPPLE_TEST_SURELY_UNSET_VARIABLE".into()))
        };
        let built = init(from_lookup, |_: String, _: &SdkConfig| {
            panic!("no handler without its config")
        })
        .await;
        assert_eq!(
            built.err(),
            Some(ConfigError::Missing(
                "RIPPLE_TEST_SURELY_UNSET_VARIABLE".into()
            ))
        );
    }
}
