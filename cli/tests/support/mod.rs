//! What the CLI's tests against the emulator share: the SDK configuration, checked to answer,
//! and stack names no other test or run uses.

use ripple::provision::{self, Clients};

/// The emulator's SDK configuration; a failure that says how to get one when it does not answer.
pub async fn emulator() -> aws_config::SdkConfig {
    // RUST_LOG=ripple=debug shows what the runtime does.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    // Never skipped: without an endpoint these tests fail and say how to get one.
    let aws = ripple_kit::config::load_sdk_config().await;
    if let Err(err) = provision::check_reachable(&Clients::new(&aws)).await {
        panic!(
            "the AWS endpoint is not reachable ({err}); run the tests with `make test`, which \
             starts the local emulators, or set AWS_ENDPOINT_URL to LocalStack"
        );
    }
    aws
}

/// `<prefix>-<test>-<6 random characters>`.
pub fn stack_name(prefix: &str, test: &str) -> String {
    let suffix: String = (0..6)
        .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
        .collect();
    format!("{prefix}-{test}-{suffix}")
}
