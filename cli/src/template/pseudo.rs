//! One stack's identity: its pseudo parameters (`AWS::StackName`, `AWS::Region`, ...), the
//! rules its name must follow, and the API id the runner gives its HTTP API.

use serde::Serialize;

use super::DEFAULT_ACCOUNT_ID;
use super::error::{TemplateError, invalid};

/// CloudFormation's pseudo parameters for one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PseudoParameters {
    /// `AWS::StackName`.
    pub stack_name: String,
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account_id: String,
    /// `AWS::Partition`.
    pub partition: String,
    /// `AWS::URLSuffix`.
    pub url_suffix: String,
}

impl PseudoParameters {
    /// A stack in `region` of the default local account.
    pub fn new(stack_name: impl Into<String>, region: impl Into<String>) -> Self {
        let region = region.into();
        let (partition, url_suffix) = if region.starts_with("cn-") {
            ("aws-cn", "amazonaws.com.cn")
        } else if region.starts_with("us-gov-") {
            ("aws-us-gov", "amazonaws.com")
        } else {
            ("aws", "amazonaws.com")
        };
        PseudoParameters {
            stack_name: stack_name.into(),
            region,
            account_id: DEFAULT_ACCOUNT_ID.to_owned(),
            partition: partition.to_owned(),
            url_suffix: url_suffix.to_owned(),
        }
    }

    /// The same stack in another account.
    pub fn with_account_id(mut self, account_id: impl Into<String>) -> Self {
        self.account_id = account_id.into();
        self
    }
}

/// Checks a stack name the way CloudFormation does: a letter, then letters, digits and hyphens,
/// at most 128 characters.
pub fn validate_stack_name(name: &str) -> Result<(), TemplateError> {
    let mut chars = name.chars();
    let starts_with_letter = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_with_letter
        || name.len() > 128
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(invalid(
            "AWS::StackName",
            format!(
                "`{name}` is not a stack name: a letter, then letters, digits and '-', at most 128"
            ),
        ));
    }
    Ok(())
}

/// A stable 10-character API id (API Gateway's format) for an API of this stack: what `!Ref`
/// of an HTTP API resolves to locally.
pub fn api_id(stack_name: &str, logical_id: &str) -> String {
    // FNV-1a: stable across runs and Rust versions, unlike std's hasher.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in stack_name.bytes().chain([b'/']).chain(logical_id.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    (0..10)
        .map(|_| {
            let c = ALPHABET[(hash % 36) as usize];
            hash /= 36;
            char::from(c)
        })
        .collect()
}
