//! Lambda entry point: read config, build clients once, serve.

use lambda_runtime::{Error, service_fn};
use payments::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = ripple_kit::lambda::init(Config::from_lookup, payments::handler).await?;
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
