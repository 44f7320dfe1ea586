//! The SAM template, read the way the local runner needs it.
//!
//! `template.yaml` is the one description of the system: the runner creates exactly the tables,
//! topics, queues and subscriptions it declares, and runs its functions behind the event sources
//! it declares. Reading it takes four steps, one module each:
//!
//! - `document`: the YAML text (CloudFormation's `!Ref`, `!GetAtt` and `!Sub` tags included)
//!   becomes a [`Template`]: parameters, mappings, conditions, `Globals.Function`, resources and
//!   outputs, unresolved, with the `Fn::ForEach` loops of `AWS::LanguageExtensions` expanded
//!   (`foreach`);
//! - `intrinsic`: how an intrinsic function is written (short tag or long form), and which
//!   resource a reference points at;
//! - [`Resolver`] (`resolver`, `builtins`, `conditions`, `attributes`): intrinsic functions resolved
//!   for one stack name, region and account, with what `!Ref` and `!GetAtt` return per type;
//! - `extract` and `function`: the resource types the runner knows, modelled as a [`Stack`]
//!   (`model`).
//!
//! `pseudo` holds a stack's identity (name, region, account), `error` what can go wrong and where.
//!   Every other resource type (keys, roles, policies, alarms, the HTTP API itself) is parsed and
//!   ignored.

mod attributes;
mod builtins;
mod conditions;
mod document;
mod error;
mod extract;
mod foreach;
mod function;
mod intrinsic;
mod model;
mod pseudo;
mod resolver;

pub use document::{Resource, Template};
pub use error::TemplateError;
pub use intrinsic::target_of;
pub use model::{
    AttributeDefinition, Authorization, EventSource, Function, HttpRoute, Ignored, KeyElement,
    Queue, Redrive, ScheduleSource, SecondaryIndex, SqsSource, Stack, StartingPosition,
    StreamSource, Subscription, Table, Topic,
};
pub use pseudo::{PseudoParameters, api_id, validate_stack_name};
pub use resolver::Resolver;

/// The account id used when nothing better is known (what emulators conventionally use).
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// The region used when the SDK configuration names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The attribute name under which [`Resolver::know`] records what `!Ref` returns.
pub const REF: &str = "Ref";

#[cfg(test)]
mod invariant_tests;
#[cfg(test)]
mod project_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod tests;
