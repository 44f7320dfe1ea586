//! The functions' binaries, built by cargo in the current workspace as `cargo run` builds them
//! (the dev profile unless told). Every binary of the template is built in one command, so that each build
//! resolves the same features and reuses what the last one compiled.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::Command;

/// Why the binaries could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// cargo could not be started.
    #[error("cannot run cargo")]
    Spawn(#[source] std::io::Error),
    /// cargo's output could not be read.
    #[error("cannot read cargo's output")]
    Read(#[source] std::io::Error),
    /// The build failed (cargo printed why).
    #[error("cargo build failed ({status})")]
    Failed {
        /// cargo's exit status.
        status: std::process::ExitStatus,
    },
}

/// Builds `binaries` with cargo's `profile` (`quiet`: without its progress lines); their paths,
/// by name.
pub async fn build(
    binaries: &[&str],
    profile: &str,
    quiet: bool,
) -> Result<BTreeMap<String, PathBuf>, BuildError> {
    // Under `cargo run` or `cargo test`, the cargo that runs us.
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    // What cargo tells the package it runs (us, under `cargo run` or `cargo test`) is no setting
    // of this build; build scripts that watch such a variable (ring's watches
    // CARGO_MANIFEST_DIR) would otherwise run again, and everything after them be rebuilt.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(describes_a_package) {
            command.env_remove(key);
        }
    }
    command.args([
        "build",
        "--message-format=json-render-diagnostics",
        "--profile",
        profile,
    ]);
    if quiet {
        command.arg("--quiet");
    }
    for binary in binaries {
        command.args(["--bin", binary]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(BuildError::Spawn)?;
    let mut built = BTreeMap::new();
    if let Some(stdout) = child.stdout.take() {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(line) = lines.next_line().await.map_err(BuildError::Read)? {
            if let Some((name, path)) = executable(&line) {
                built.insert(name, path);
            }
        }
    }
    let status = child.wait().await.map_err(BuildError::Read)?;
    if !status.success() {
        return Err(BuildError::Failed { status });
    }
    Ok(built)
}

/// A variable cargo sets for the package it compiles or runs.
fn describes_a_package(key: &str) -> bool {
    key == "OUT_DIR"
        || key == "CARGO_MANIFEST_DIR"
        || key == "CARGO_MANIFEST_PATH"
        || key == "CARGO_CRATE_NAME"
        || key == "CARGO_BIN_NAME"
        || key == "CARGO_PRIMARY_PACKAGE"
        || key == "CARGO_TARGET_TMPDIR"
        || key.starts_with("CARGO_PKG_")
        || key.starts_with("CARGO_BIN_EXE_")
}

/// The binary a `compiler-artifact` message of cargo's JSON output reports, if it is one.
fn executable(line: &str) -> Option<(String, PathBuf)> {
    let message: Value = serde_json::from_str(line).ok()?;
    if message["reason"] != "compiler-artifact" {
        return None;
    }
    let path = message["executable"].as_str()?;
    let name = message["target"]["name"].as_str()?;
    Some((name.to_owned(), PathBuf::from(path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_cargo_says_of_a_package_is_not_passed_on_but_its_settings_are() {
        for key in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "CARGO_BIN_EXE_ripple",
            "OUT_DIR",
        ] {
            assert!(describes_a_package(key), "{key}");
        }
        for key in [
            "CARGO_HOME",
            "CARGO_TARGET_DIR",
            "CARGO_INCREMENTAL",
            "CARGO",
        ] {
            assert!(!describes_a_package(key), "{key}");
        }
    }

    #[test]
    fn only_binaries_of_compiler_artifact_messages_are_picked() {
        let bin = r#"{"reason":"compiler-artifact","target":{"kind":["bin"],"name":"inventory"},"executable":"/t/debug/inventory"}"#;
        assert_eq!(
            executable(bin),
            Some(("inventory".into(), PathBuf::from("/t/debug/inventory")))
        );
        let lib = r#"{"reason":"compiler-artifact","target":{"kind":["lib"],"name":"inventory"},"executable":null}"#;
        assert_eq!(executable(lib), None);
        assert_eq!(
            executable(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(executable("   Compiling inventory"), None);
    }
}
