//! Progress on stderr for the long commands (`ripple dev`, `ripple soak`): a bar or a spinner when
//! stderr is a terminal and the report is not JSON, hidden otherwise so logs stay clean.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps (a spinner without one) in `template`; hidden when `json` is set or
/// stderr is not a terminal.
pub fn bar(json: bool, len: Option<u64>, template: &str) -> ProgressBar {
    if json || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
