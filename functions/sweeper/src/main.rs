//! Lambda entry point: read config, build clients once, serve.

use lambda_runtime::{Error, service_fn};
use sweeper::Config;

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = ripple_kit::lambda::init(Config::from_lookup, sweeper::handler).await?;
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
