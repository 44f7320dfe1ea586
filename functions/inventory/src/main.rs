//! Lambda entry point: read config, build clients once, serve.

use inventory::Config;
use lambda_runtime::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let handler = ripple_kit::lambda::init(Config::from_lookup, inventory::handler).await?;
    lambda_runtime::run(service_fn(|event| handler.handle(event))).await
}
