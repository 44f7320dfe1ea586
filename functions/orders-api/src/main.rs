//! Lambda entry point: read config, build clients once, serve.

use lambda_runtime::{Error, service_fn};
use orders_api::{Config, Handler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init_tracing();
    let config = Config::from_env()?;
    let aws = shared::config::load_sdk_config().await;
    let handler = Handler::new(config, &aws);
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
