//! `ripple`: Ripple's command line and local runner.
//!
//! The library is what `ripple dev` and the end-to-end tests share: read `template.yaml`
//! ([`template`]), create what it declares in an emulator ([`provision`]), and run the functions
//! in-process ([`functions`]) behind emulated event sources and an HTTP API ([`runtime`]).
//! [`stack`] keeps a stack between commands (`ripple up`, `env`, `down`), [`invoke`] runs
//! one function's real binary on one event against it (`ripple invoke`, `make invoke`), and
//! [`republish`] publishes a time range of a stack's stored events again (`ripple republish`).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use ripple::{functions, provision, runtime, template::Template};
//!
//! let aws = ripple_kit::config::load_sdk_config().await;
//! let template = Template::from_file("template.yaml")?;
//! let deployment = provision::provision(&aws, &template, "e2e-1a2b3c").await?;
//! let handlers = functions::handlers(&deployment, &aws)?;
//! let clients = provision::Clients::new(&aws);
//! let running = runtime::Runtime::start(&clients, &deployment, handlers, Default::default()).await?;
//! // ... send requests to running.http_url(), then:
//! running.wait_until_quiet(std::time::Duration::from_secs(60), |_, _| {}).await?;
//! running.stop().await;
//! provision::teardown(&aws, &deployment).await?;
//! # Ok(())
//! # }
//! ```
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod boundary;
pub mod connect;
pub mod dev;
pub mod dlq;
pub mod functions;
pub mod history;
pub mod invoke;
pub mod load;
pub mod progress;
pub mod provision;
pub mod replay;
pub mod republish;
pub mod runtime;
pub mod soak;
pub mod stack;
pub mod status;
pub mod template;
