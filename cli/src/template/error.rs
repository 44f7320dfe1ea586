//! What can go wrong reading or resolving a template, with where it went wrong.

use std::path::PathBuf;

/// What went wrong reading or resolving the template. `at` is a dotted path into the template.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The text is not YAML.
    #[error("template is not valid YAML")]
    Yaml(#[source] serde_norway::Error),
    /// The structure is not what CloudFormation accepts.
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// `!Ref` or `${...}` names something that does not exist.
    #[error("{at}: `{name}` is neither a parameter, a pseudo parameter nor a resource")]
    UnknownReference {
        /// Where.
        at: String,
        /// The name referenced.
        name: String,
    },
    /// `!GetAtt` asks for an attribute the runner cannot produce for that type.
    #[error("{at}: the runner cannot resolve {logical_id}.{attribute} ({resource_type})")]
    UnknownAttribute {
        /// Where.
        at: String,
        /// The resource.
        logical_id: String,
        /// Its type.
        resource_type: String,
        /// The attribute asked for.
        attribute: String,
    },
    /// The value exists only once the resource does (a stream ARN): provision first.
    #[error("{at}: {logical_id}.{attribute} is known only once the resource exists")]
    NotYetKnown {
        /// Where.
        at: String,
        /// The resource.
        logical_id: String,
        /// The attribute.
        attribute: String,
    },
    /// An intrinsic function the runner does not evaluate.
    #[error("{at}: intrinsic function {function} is not supported by the local runner")]
    Unsupported {
        /// Where.
        at: String,
        /// The function's long name.
        function: String,
    },
    /// References nest deeper than any sane template does.
    #[error("{at}: references nest too deeply (is there a cycle?)")]
    TooDeep {
        /// Where.
        at: String,
    },
}

pub(super) fn invalid(at: &str, message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        at: at.to_owned(),
        message: message.into(),
    }
}
