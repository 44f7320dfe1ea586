//! Lambda entry point: read config, build clients once, serve.
// The handler's nested async state machines (batch → retry → store) outgrow the default limit.
#![recursion_limit = "256"]

use lambda_runtime::{Error, service_fn};
use notifications::{Config, Handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init_tracing();
    let config = Config::from_env()?;
    let aws = shared::config::load_sdk_config().await;
    let handler = Handler::new(config, &aws);
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
