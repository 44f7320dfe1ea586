//! The SAM template, read the way the local runner needs it.
//!
//! `template.yaml` is the one description of the system: the runner creates exactly the tables,
//! topics, queues and subscriptions it declares, and runs its functions behind the event sources
//! it declares. This module parses the YAML (CloudFormation's `!Ref`, `!GetAtt` and `!Sub` tags
//! included), resolves intrinsic functions for one stack name, region and account, and models the
//! resource types the runner knows. Every other resource type (keys, roles, policies, alarms, the
//! HTTP API itself) is parsed and ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value as Json;
use serde_norway::Value as Yaml;

/// The account id used when nothing better is known (what emulators conventionally use).
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
/// The region used when the SDK configuration names none.
pub const DEFAULT_REGION: &str = "us-east-1";
/// The attribute name under which [`Resolver::know`] records what `!Ref` returns.
pub const REF: &str = "Ref";

/// SAM's default function timeout when neither the function nor `Globals` sets one.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
/// SAM's default memory size.
const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's default batch sizes per event source type.
const DEFAULT_SQS_BATCH_SIZE: u32 = 10;
const DEFAULT_STREAM_BATCH_SIZE: u32 = 100;
/// Guards against reference cycles (a name that `!Sub`s a `!Ref` to itself).
const MAX_DEPTH: u8 = 32;

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

fn invalid(at: &str, message: impl Into<String>) -> TemplateError {
    TemplateError::Invalid {
        at: at.to_owned(),
        message: message.into(),
    }
}

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

/// A parsed template: parameters, conditions, `Globals.Function` and resources, unresolved.
#[derive(Debug, Clone)]
pub struct Template {
    parameters: BTreeMap<String, Option<Yaml>>,
    conditions: BTreeMap<String, Yaml>,
    function_globals: Yaml,
    resources: BTreeMap<String, Resource>,
}

/// One resource as written in the template.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its logical id.
    pub logical_id: String,
    /// `Type`, e.g. `AWS::SQS::Queue`.
    pub resource_type: String,
    properties: Yaml,
    metadata: Yaml,
    condition: Option<String>,
}

impl Template {
    /// Reads and parses a template file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TemplateError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses template text.
    pub fn parse(text: &str) -> Result<Self, TemplateError> {
        let root: Yaml = serde_norway::from_str(text).map_err(TemplateError::Yaml)?;
        if !root.is_mapping() {
            return Err(invalid("", "a template is a mapping"));
        }
        let mut parameters = BTreeMap::new();
        if let Some(Yaml::Mapping(params)) = root.get("Parameters") {
            for (name, body) in params {
                let name = key_string(name, "Parameters")?;
                parameters.insert(name, body.get("Default").cloned());
            }
        }
        let mut conditions = BTreeMap::new();
        if let Some(Yaml::Mapping(conds)) = root.get("Conditions") {
            for (name, body) in conds {
                conditions.insert(key_string(name, "Conditions")?, body.clone());
            }
        }
        let function_globals = root
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .cloned()
            .unwrap_or(Yaml::Null);
        let Some(Yaml::Mapping(raw)) = root.get("Resources") else {
            return Err(invalid("Resources", "the template declares no resources"));
        };
        let mut resources = BTreeMap::new();
        for (id, body) in raw {
            let logical_id = key_string(id, "Resources")?;
            let at = format!("Resources.{logical_id}");
            let resource_type = body
                .get("Type")
                .and_then(Yaml::as_str)
                .ok_or_else(|| invalid(&at, "has no Type"))?
                .to_owned();
            let condition = match body.get("Condition") {
                None => None,
                Some(c) => Some(
                    c.as_str()
                        .ok_or_else(|| invalid(&at, "Condition must name a condition"))?
                        .to_owned(),
                ),
            };
            resources.insert(
                logical_id.clone(),
                Resource {
                    logical_id,
                    resource_type,
                    properties: body.get("Properties").cloned().unwrap_or(Yaml::Null),
                    metadata: body.get("Metadata").cloned().unwrap_or(Yaml::Null),
                    condition,
                },
            );
        }
        Ok(Template {
            parameters,
            conditions,
            function_globals,
            resources,
        })
    }

    /// Every resource, by logical id.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.resources.values()
    }

    /// One resource.
    pub fn resource(&self, logical_id: &str) -> Option<&Resource> {
        self.resources.get(logical_id)
    }

    /// A resolver for one stack.
    pub fn resolver(&self, pseudo: PseudoParameters) -> Resolver<'_> {
        Resolver::new(self, pseudo)
    }

    /// What the template declares for one stack, with parameter defaults.
    pub fn stack(&self, pseudo: PseudoParameters) -> Result<Stack, TemplateError> {
        self.resolver(pseudo).stack()
    }
}

fn key_string(key: &Yaml, at: &str) -> Result<String, TemplateError> {
    key.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, "keys must be strings"))
}

/// Resolves intrinsic functions for one stack.
///
/// A resource's `!Ref` and `!GetAtt` values are what CloudFormation returns for its type,
/// predicted from its name, region and account, unless the real value has been recorded with
/// [`know`](Self::know): the provisioner records what the services return (the emulator's
/// ARNs and queue URLs), so nothing the service can tell is ever made up.
#[derive(Debug, Clone)]
pub struct Resolver<'t> {
    template: &'t Template,
    pseudo: PseudoParameters,
    parameters: BTreeMap<String, String>,
    known: BTreeMap<(String, String), String>,
}

/// An intrinsic function found in the template.
enum Intrinsic<'a> {
    Call(String, &'a Yaml),
}

fn intrinsic(value: &Yaml) -> Option<Intrinsic<'_>> {
    match value {
        Yaml::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            let short = tag.trim_start_matches('!');
            let name = match short {
                "Ref" | "Condition" => short.to_owned(),
                other => format!("Fn::{other}"),
            };
            Some(Intrinsic::Call(name, &tagged.value))
        }
        Yaml::Mapping(map) if map.len() == 1 => {
            let (key, arg) = map.iter().next()?;
            let key = key.as_str()?;
            (key == "Ref" || key.starts_with("Fn::")).then(|| Intrinsic::Call(key.to_owned(), arg))
        }
        _ => None,
    }
}

/// The resource (and attribute, [`REF`] for `!Ref`) an intrinsic points at: `!Ref X`,
/// `!GetAtt X.Arn`, `Fn::GetAtt: [X, Arn]`, or a `!Sub "${X.Arn}"` made of that one reference.
pub fn target_of(value: &Yaml) -> Option<(String, String)> {
    let Intrinsic::Call(name, arg) = intrinsic(value)?;
    match name.as_str() {
        "Ref" => Some((arg.as_str()?.to_owned(), REF.to_owned())),
        "Fn::GetAtt" => get_att_parts(arg),
        "Fn::Sub" => {
            let text = arg.as_str()?;
            let inner = text.strip_prefix("${")?.strip_suffix('}')?;
            if inner.contains(['$', '{', '}']) {
                return None;
            }
            match inner.split_once('.') {
                Some((id, attr)) => Some((id.to_owned(), attr.to_owned())),
                None => Some((inner.to_owned(), REF.to_owned())),
            }
        }
        _ => None,
    }
}

fn get_att_parts(arg: &Yaml) -> Option<(String, String)> {
    match arg {
        Yaml::String(s) => {
            let (id, attr) = s.split_once('.')?;
            Some((id.to_owned(), attr.to_owned()))
        }
        Yaml::Sequence(parts) if parts.len() == 2 => {
            Some((parts[0].as_str()?.to_owned(), parts[1].as_str()?.to_owned()))
        }
        _ => None,
    }
}

impl<'t> Resolver<'t> {
    /// A resolver with parameter defaults and predicted resource values.
    pub fn new(template: &'t Template, pseudo: PseudoParameters) -> Self {
        Resolver {
            template,
            pseudo,
            parameters: BTreeMap::new(),
            known: BTreeMap::new(),
        }
    }

    /// Overrides a parameter's default.
    pub fn with_parameter(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.insert(name.into(), value.into());
        self
    }

    /// Records the real value of `logical_id`'s `attribute` ([`REF`] for what `!Ref` returns).
    pub fn know(&mut self, logical_id: &str, attribute: &str, value: impl Into<String>) {
        self.known
            .insert((logical_id.to_owned(), attribute.to_owned()), value.into());
    }

    /// The stack's pseudo parameters.
    pub fn pseudo(&self) -> &PseudoParameters {
        &self.pseudo
    }

    /// The template this resolver reads.
    pub fn template(&self) -> &'t Template {
        self.template
    }

    /// Resolves every intrinsic in `value` into plain JSON (`AWS::NoValue` becomes null).
    pub fn resolve(&self, value: &Yaml) -> Result<Json, TemplateError> {
        Ok(self.eval(value, "", 0)?.unwrap_or(Json::Null))
    }

    /// Resolves `value` to a string (numbers and booleans are written out, as CloudFormation does).
    pub fn resolve_string(&self, value: &Yaml) -> Result<String, TemplateError> {
        self.string(value, "", 0)
    }

    /// What `!Ref logical_id` returns.
    pub fn reference(&self, logical_id: &str) -> Result<String, TemplateError> {
        match self.reference_value(logical_id, logical_id, 0)? {
            Some(value) => json_string(&value, logical_id),
            None => Ok(String::new()),
        }
    }

    /// What `!GetAtt logical_id.attribute` returns.
    pub fn attribute(&self, logical_id: &str, attribute: &str) -> Result<String, TemplateError> {
        self.get_att(logical_id, attribute, logical_id, 0)
    }

    /// Whether a named condition holds.
    pub fn condition(&self, name: &str) -> Result<bool, TemplateError> {
        self.named_condition(name, &format!("Conditions.{name}"), 0)
    }

    /// The resolved environment of a function: `Globals` merged with its own variables.
    pub fn environment(
        &self,
        function: &Function,
    ) -> Result<BTreeMap<String, String>, TemplateError> {
        let mut env = BTreeMap::new();
        for (key, value) in &function.environment {
            let at = format!(
                "Resources.{}.Properties.Environment.Variables.{key}",
                function.logical_id
            );
            env.insert(key.clone(), self.string(value, &at, 0)?);
        }
        Ok(env)
    }

    fn eval(&self, value: &Yaml, at: &str, depth: u8) -> Result<Option<Json>, TemplateError> {
        if depth > MAX_DEPTH {
            return Err(TemplateError::TooDeep { at: at.to_owned() });
        }
        if let Some(Intrinsic::Call(name, arg)) = intrinsic(value) {
            return self.call(&name, arg, at, depth + 1);
        }
        Ok(Some(match value {
            Yaml::Null => Json::Null,
            Yaml::Bool(b) => Json::Bool(*b),
            Yaml::Number(n) => yaml_number(n),
            Yaml::String(s) => Json::String(s.clone()),
            Yaml::Sequence(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    if let Some(v) = self.eval(item, &format!("{at}[{i}]"), depth)? {
                        out.push(v);
                    }
                }
                Json::Array(out)
            }
            Yaml::Mapping(map) => {
                let mut out = serde_json::Map::new();
                for (key, item) in map {
                    let key = match key {
                        Yaml::String(s) => s.clone(),
                        Yaml::Number(n) => n.to_string(),
                        Yaml::Bool(b) => b.to_string(),
                        _ => return Err(invalid(at, "mapping keys must be scalars")),
                    };
                    let child = if at.is_empty() {
                        key.clone()
                    } else {
                        format!("{at}.{key}")
                    };
                    if let Some(v) = self.eval(item, &child, depth)? {
                        out.insert(key, v);
                    }
                }
                Json::Object(out)
            }
            // `intrinsic` handles every tag; an unknown one is reported there.
            Yaml::Tagged(tagged) => {
                return Err(TemplateError::Unsupported {
                    at: at.to_owned(),
                    function: tagged.tag.to_string(),
                });
            }
        }))
    }

    fn string(&self, value: &Yaml, at: &str, depth: u8) -> Result<String, TemplateError> {
        match self.eval(value, at, depth)? {
            Some(v) => json_string(&v, at),
            None => Ok(String::new()),
        }
    }

    fn call(
        &self,
        name: &str,
        arg: &Yaml,
        at: &str,
        depth: u8,
    ) -> Result<Option<Json>, TemplateError> {
        match name {
            "Ref" => {
                let target = arg
                    .as_str()
                    .ok_or_else(|| invalid(at, "!Ref takes a name"))?;
                self.reference_value(target, at, depth)
            }
            "Fn::GetAtt" => {
                let (id, attr) = get_att_parts(arg).ok_or_else(|| {
                    invalid(
                        at,
                        "!GetAtt takes `Resource.Attribute` or [Resource, Attribute]",
                    )
                })?;
                Ok(Some(Json::String(self.get_att(&id, &attr, at, depth)?)))
            }
            "Fn::Sub" => self.sub(arg, at, depth).map(|s| Some(Json::String(s))),
            "Fn::Join" => {
                let parts = arg
                    .as_sequence()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| invalid(at, "!Join takes [delimiter, [values]]"))?;
                let delimiter = self.string(&parts[0], at, depth)?;
                let values = match self.eval(&parts[1], at, depth)? {
                    Some(Json::Array(values)) => values,
                    _ => return Err(invalid(at, "!Join's second argument must be a list")),
                };
                let strings = values
                    .iter()
                    .map(|v| json_string(v, at))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(Json::String(strings.join(&delimiter))))
            }
            "Fn::Select" => {
                let parts = arg
                    .as_sequence()
                    .filter(|p| p.len() == 2)
                    .ok_or_else(|| invalid(at, "!Select takes [index, [values]]"))?;
                let index: usize = self
                    .string(&parts[0], at, depth)?
                    .parse()
                    .map_err(|_| invalid(at, "!Select's index must be a number"))?;
                match self.eval(&parts[1], at, depth)? {
                    Some(Json::Array(values)) => values
                        .get(index)
                        .cloned()
                        .map(Some)
                        .ok_or_else(|| invalid(at, "!Select's index is out of range")),
                    _ => Err(invalid(at, "!Select's second argument must be a list")),
                }
            }
            "Fn::If" => {
                let parts = arg
                    .as_sequence()
                    .filter(|p| p.len() == 3)
                    .ok_or_else(|| invalid(at, "!If takes [condition, then, else]"))?;
                let condition = parts[0]
                    .as_str()
                    .ok_or_else(|| invalid(at, "!If's first argument names a condition"))?;
                let branch = if self.named_condition(condition, at, depth)? {
                    &parts[1]
                } else {
                    &parts[2]
                };
                self.eval(branch, at, depth)
            }
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let value = Yaml::Tagged(Box::new(serde_norway::value::TaggedValue {
                    tag: serde_norway::value::Tag::new(name.trim_start_matches("Fn::")),
                    value: arg.clone(),
                }));
                self.condition_value(&value, at, depth)
                    .map(|b| Some(Json::Bool(b)))
            }
            "Fn::Base64" => {
                use base64::Engine as _;
                let text = self.string(arg, at, depth)?;
                Ok(Some(Json::String(
                    base64::engine::general_purpose::STANDARD.encode(text),
                )))
            }
            other => Err(TemplateError::Unsupported {
                at: at.to_owned(),
                function: other.to_owned(),
            }),
        }
    }

    fn named_condition(&self, name: &str, at: &str, depth: u8) -> Result<bool, TemplateError> {
        let body = self
            .template
            .conditions
            .get(name)
            .ok_or_else(|| invalid(at, format!("no condition named {name}")))?;
        self.condition_value(body, &format!("Conditions.{name}"), depth + 1)
    }

    fn condition_value(&self, value: &Yaml, at: &str, depth: u8) -> Result<bool, TemplateError> {
        if depth > MAX_DEPTH {
            return Err(TemplateError::TooDeep { at: at.to_owned() });
        }
        // `{Condition: Name}` is a condition reference only here, inside condition functions.
        if let Yaml::Mapping(map) = value
            && map.len() == 1
            && let Some(name) = map.get("Condition").and_then(Yaml::as_str)
        {
            return self.named_condition(name, at, depth);
        }
        let Some(Intrinsic::Call(name, arg)) = intrinsic(value) else {
            return match self.eval(value, at, depth)? {
                Some(Json::Bool(b)) => Ok(b),
                Some(Json::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
                _ => Err(invalid(at, "expected a condition")),
            };
        };
        let args = |n: usize| {
            arg.as_sequence()
                .filter(|a| n == 0 || a.len() == n)
                .ok_or_else(|| invalid(at, format!("{name} takes a list")))
        };
        match name.as_str() {
            "Condition" => {
                let name = arg
                    .as_str()
                    .ok_or_else(|| invalid(at, "Condition names a condition"))?;
                self.named_condition(name, at, depth)
            }
            "Fn::Equals" => {
                let a = args(2)?;
                let left = self.eval(&a[0], at, depth)?.unwrap_or(Json::Null);
                let right = self.eval(&a[1], at, depth)?.unwrap_or(Json::Null);
                Ok(scalar_text(&left) == scalar_text(&right))
            }
            "Fn::Not" => Ok(!self.condition_value(&args(1)?[0], at, depth + 1)?),
            "Fn::And" => {
                for item in args(0)? {
                    if !self.condition_value(item, at, depth + 1)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            "Fn::Or" => {
                for item in args(0)? {
                    if self.condition_value(item, at, depth + 1)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            _ => match self.call(&name, arg, at, depth + 1)? {
                Some(Json::Bool(b)) => Ok(b),
                _ => Err(invalid(at, "expected a condition")),
            },
        }
    }

    fn sub(&self, arg: &Yaml, at: &str, depth: u8) -> Result<String, TemplateError> {
        let (text, variables) = match arg {
            Yaml::String(s) => (s.as_str(), None),
            Yaml::Sequence(parts) if parts.len() == 2 => (
                parts[0]
                    .as_str()
                    .ok_or_else(|| invalid(at, "!Sub's first element is the string"))?,
                Some(
                    parts[1]
                        .as_mapping()
                        .ok_or_else(|| invalid(at, "!Sub's second element maps variables"))?,
                ),
            ),
            _ => return Err(invalid(at, "!Sub takes a string or [string, {variables}]")),
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| invalid(at, format!("unterminated ${{ in {text:?}")))?;
            let name = after[..end].trim();
            if let Some(literal) = name.strip_prefix('!') {
                // `${!Literal}` writes `${Literal}`.
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(value) = variables.and_then(|v| v.get(name)) {
                out.push_str(&self.string(value, at, depth + 1)?);
            } else if let Some((id, attr)) = name.split_once('.') {
                out.push_str(&self.get_att(id, attr, at, depth + 1)?);
            } else {
                // `AWS::NoValue` writes nothing.
                if let Some(v) = self.reference_value(name, at, depth + 1)? {
                    out.push_str(&json_string(&v, at)?);
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn reference_value(
        &self,
        name: &str,
        at: &str,
        depth: u8,
    ) -> Result<Option<Json>, TemplateError> {
        let p = &self.pseudo;
        let pseudo = match name {
            "AWS::StackName" => Some(p.stack_name.clone()),
            "AWS::Region" => Some(p.region.clone()),
            "AWS::AccountId" => Some(p.account_id.clone()),
            "AWS::Partition" => Some(p.partition.clone()),
            "AWS::URLSuffix" => Some(p.url_suffix.clone()),
            "AWS::StackId" => Some(format!(
                "arn:{}:cloudformation:{}:{}:stack/{}/00000000-0000-0000-0000-000000000000",
                p.partition, p.region, p.account_id, p.stack_name
            )),
            "AWS::NoValue" => return Ok(None),
            "AWS::NotificationARNs" => return Ok(Some(Json::Array(Vec::new()))),
            _ => None,
        };
        if let Some(value) = pseudo {
            return Ok(Some(Json::String(value)));
        }
        if let Some(value) = self.parameters.get(name) {
            return Ok(Some(Json::String(value.clone())));
        }
        if let Some(default) = self.template.parameters.get(name) {
            let default = default.as_ref().ok_or_else(|| {
                invalid(at, format!("parameter {name} has no Default; pass a value"))
            })?;
            return self.eval(default, &format!("Parameters.{name}.Default"), depth + 1);
        }
        if self.template.resources.contains_key(name) {
            return self
                .get_att(name, REF, at, depth)
                .map(|s| Some(Json::String(s)));
        }
        Err(TemplateError::UnknownReference {
            at: at.to_owned(),
            name: name.to_owned(),
        })
    }

    fn get_att(&self, id: &str, attr: &str, at: &str, depth: u8) -> Result<String, TemplateError> {
        if let Some(value) = self.known.get(&(id.to_owned(), attr.to_owned())) {
            return Ok(value.clone());
        }
        let resource =
            self.template
                .resources
                .get(id)
                .ok_or_else(|| TemplateError::UnknownReference {
                    at: at.to_owned(),
                    name: id.to_owned(),
                })?;
        let p = &self.pseudo;
        let unknown = || TemplateError::UnknownAttribute {
            at: at.to_owned(),
            logical_id: id.to_owned(),
            resource_type: resource.resource_type.clone(),
            attribute: attr.to_owned(),
        };
        let later = || TemplateError::NotYetKnown {
            at: at.to_owned(),
            logical_id: id.to_owned(),
            attribute: attr.to_owned(),
        };
        let name = || self.physical_name(resource, depth + 1);
        let value = match (resource.resource_type.as_str(), attr) {
            ("AWS::DynamoDB::Table", REF) => name()?,
            ("AWS::DynamoDB::Table", "Arn") => format!(
                "arn:{}:dynamodb:{}:{}:table/{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            // The stream label is a creation timestamp only DynamoDB knows.
            ("AWS::DynamoDB::Table", "StreamArn") => return Err(later()),
            ("AWS::SNS::Topic", REF | "TopicArn") => format!(
                "arn:{}:sns:{}:{}:{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            ("AWS::SNS::Topic", "TopicName") => name()?,
            ("AWS::SQS::Queue", REF | "QueueUrl") => format!(
                "https://sqs.{}.{}/{}/{}",
                p.region,
                p.url_suffix,
                p.account_id,
                name()?
            ),
            ("AWS::SQS::Queue", "Arn") => format!(
                "arn:{}:sqs:{}:{}:{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            ("AWS::SQS::Queue", "QueueName") => name()?,
            ("AWS::Serverless::HttpApi" | "AWS::ApiGatewayV2::Api", REF | "ApiId") => {
                api_id(&p.stack_name, id)
            }
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", REF) => name()?,
            ("AWS::Serverless::Function" | "AWS::Lambda::Function", "Arn") => format!(
                "arn:{}:lambda:{}:{}:function:{}",
                p.partition,
                p.region,
                p.account_id,
                name()?
            ),
            _ => return Err(unknown()),
        };
        Ok(value)
    }

    /// The physical name of a named resource type: its name property, or a generated
    /// `<stack>-<LogicalId>` (deterministic, where CloudFormation would add a random suffix).
    fn physical_name(&self, resource: &Resource, depth: u8) -> Result<String, TemplateError> {
        let at = format!("Resources.{}.Properties", resource.logical_id);
        let props = &resource.properties;
        let (property, fifo_flag, limit) = match resource.resource_type.as_str() {
            "AWS::DynamoDB::Table" => ("TableName", None, 255),
            "AWS::SNS::Topic" => ("TopicName", Some("FifoTopic"), 256),
            "AWS::SQS::Queue" => ("QueueName", Some("FifoQueue"), 80),
            "AWS::Serverless::Function" | "AWS::Lambda::Function" => ("FunctionName", None, 64),
            other => {
                return Err(invalid(&at, format!("{other} has no physical name")));
            }
        };
        if let Some(value) = props.get(property) {
            return self.string(value, &format!("{at}.{property}"), depth);
        }
        let fifo = match fifo_flag.and_then(|flag| props.get(flag)) {
            Some(flag) => self.flag(
                flag,
                &format!("{at}.{}", fifo_flag.unwrap_or_default()),
                depth,
            )?,
            None => false,
        };
        let suffix = if fifo { ".fifo" } else { "" };
        let mut base = format!("{}-{}", self.pseudo.stack_name, resource.logical_id);
        base.truncate(limit - suffix.len());
        Ok(base + suffix)
    }

    fn flag(&self, value: &Yaml, at: &str, depth: u8) -> Result<bool, TemplateError> {
        match self.eval(value, at, depth)? {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(b),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(invalid(at, "expected true or false")),
        }
    }

    fn number(&self, value: &Yaml, at: &str) -> Result<u32, TemplateError> {
        let text = self.string(value, at, 0)?;
        text.trim()
            .parse()
            .map_err(|_| invalid(at, format!("expected a whole number, found {text:?}")))
    }

    /// Models what the template declares for this stack.
    pub fn stack(&self) -> Result<Stack, TemplateError> {
        let mut stack = Stack {
            pseudo: self.pseudo.clone(),
            tables: Vec::new(),
            topics: Vec::new(),
            queues: Vec::new(),
            subscriptions: Vec::new(),
            functions: Vec::new(),
            ignored: Vec::new(),
        };
        for resource in self.template.resources.values() {
            if let Some(condition) = &resource.condition
                && !self.named_condition(
                    condition,
                    &format!("Resources.{}.Condition", resource.logical_id),
                    0,
                )?
            {
                continue;
            }
            match resource.resource_type.as_str() {
                "AWS::DynamoDB::Table" => stack.tables.push(self.table(resource)?),
                "AWS::SNS::Topic" => stack.topics.push(self.topic(resource)?),
                "AWS::SQS::Queue" => stack.queues.push(self.queue(resource)?),
                "AWS::SNS::Subscription" => match self.subscription(resource)? {
                    Ok(subscription) => stack.subscriptions.push(subscription),
                    Err(reason) => stack.ignored.push(Ignored {
                        logical_id: resource.logical_id.clone(),
                        resource_type: resource.resource_type.clone(),
                        reason,
                    }),
                },
                "AWS::Serverless::Function" => stack.functions.push(self.function(resource)?),
                other => stack.ignored.push(Ignored {
                    logical_id: resource.logical_id.clone(),
                    resource_type: other.to_owned(),
                    reason: "not emulated".to_owned(),
                }),
            }
        }
        stack.check_references()?;
        Ok(stack)
    }

    fn table(&self, r: &Resource) -> Result<Table, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        // Only the properties the runner uses are resolved: others reference resources it does
        // not emulate (the KMS key).
        let mut props = serde_json::Map::new();
        for key in [
            "KeySchema",
            "AttributeDefinitions",
            "GlobalSecondaryIndexes",
            "StreamSpecification",
            "TimeToLiveSpecification",
        ] {
            if let Some(value) = r.properties.get(key)
                && let Some(value) = self.eval(value, &format!("{at}.{key}"), 0)?
            {
                props.insert(key.to_owned(), value);
            }
        }
        let props = Json::Object(props);
        let keys = |value: &Json, at: &str| -> Result<Vec<KeyElement>, TemplateError> {
            value
                .as_array()
                .ok_or_else(|| invalid(at, "KeySchema must be a list"))?
                .iter()
                .map(|k| {
                    Ok(KeyElement {
                        attribute_name: str_field(k, "AttributeName", at)?,
                        key_type: str_field(k, "KeyType", at)?,
                    })
                })
                .collect()
        };
        let key_schema = keys(&props["KeySchema"], &format!("{at}.KeySchema"))?;
        let attribute_definitions = props["AttributeDefinitions"]
            .as_array()
            .ok_or_else(|| invalid(&at, "AttributeDefinitions must be a list"))?
            .iter()
            .map(|a| {
                Ok(AttributeDefinition {
                    attribute_name: str_field(a, "AttributeName", &at)?,
                    attribute_type: str_field(a, "AttributeType", &at)?,
                })
            })
            .collect::<Result<_, TemplateError>>()?;
        let mut global_secondary_indexes = Vec::new();
        if let Some(indexes) = props["GlobalSecondaryIndexes"].as_array() {
            for (i, index) in indexes.iter().enumerate() {
                let at = format!("{at}.GlobalSecondaryIndexes[{i}]");
                global_secondary_indexes.push(SecondaryIndex {
                    index_name: str_field(index, "IndexName", &at)?,
                    key_schema: keys(&index["KeySchema"], &at)?,
                    projection_type: index["Projection"]["ProjectionType"]
                        .as_str()
                        .unwrap_or("ALL")
                        .to_owned(),
                    non_key_attributes: index["Projection"]["NonKeyAttributes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default(),
                });
            }
        }
        let ttl = &props["TimeToLiveSpecification"];
        let ttl_enabled = matches!(&ttl["Enabled"], Json::Bool(true))
            || ttl["Enabled"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("true"));
        Ok(Table {
            logical_id: r.logical_id.clone(),
            name: self.physical_name(r, 0)?,
            key_schema,
            attribute_definitions,
            global_secondary_indexes,
            stream_view_type: props["StreamSpecification"]["StreamViewType"]
                .as_str()
                .map(str::to_owned),
            ttl_attribute: ttl_enabled
                .then(|| ttl["AttributeName"].as_str().map(str::to_owned))
                .flatten(),
        })
    }

    fn topic(&self, r: &Resource) -> Result<Topic, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        let flag = |key: &str| match r.properties.get(key) {
            Some(v) => self.flag(v, &format!("{at}.{key}"), 0),
            None => Ok(false),
        };
        Ok(Topic {
            logical_id: r.logical_id.clone(),
            name: self.physical_name(r, 0)?,
            fifo: flag("FifoTopic")?,
            content_based_deduplication: flag("ContentBasedDeduplication")?,
        })
    }

    fn queue(&self, r: &Resource) -> Result<Queue, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        let props = &r.properties;
        let flag = |key: &str| match props.get(key) {
            Some(v) => self.flag(v, &format!("{at}.{key}"), 0),
            None => Ok(false),
        };
        let number = |key: &str| match props.get(key) {
            Some(v) => self.number(v, &format!("{at}.{key}")).map(Some),
            None => Ok(None),
        };
        let redrive = match props.get("RedrivePolicy") {
            None => None,
            Some(policy) => {
                let at = format!("{at}.RedrivePolicy");
                let policy = match policy {
                    // The policy may also be written as a JSON string.
                    Yaml::String(text) => {
                        serde_norway::from_str(text).map_err(TemplateError::Yaml)?
                    }
                    other => other.clone(),
                };
                let target = policy
                    .get("deadLetterTargetArn")
                    .ok_or_else(|| invalid(&at, "has no deadLetterTargetArn"))?;
                let (dlq, _) = target_of(target).ok_or_else(|| {
                    invalid(
                        &at,
                        "deadLetterTargetArn must be !GetAtt <a queue of this template>.Arn",
                    )
                })?;
                let count = policy
                    .get("maxReceiveCount")
                    .ok_or_else(|| invalid(&at, "has no maxReceiveCount"))?;
                Some(Redrive {
                    dead_letter_queue: dlq,
                    max_receive_count: self.number(count, &format!("{at}.maxReceiveCount"))?,
                })
            }
        };
        Ok(Queue {
            logical_id: r.logical_id.clone(),
            name: self.physical_name(r, 0)?,
            fifo: flag("FifoQueue")?,
            content_based_deduplication: flag("ContentBasedDeduplication")?,
            visibility_timeout: number("VisibilityTimeout")?,
            message_retention_period: number("MessageRetentionPeriod")?,
            delay_seconds: number("DelaySeconds")?,
            redrive,
        })
    }

    /// A subscription the runner can create, or why it cannot.
    fn subscription(&self, r: &Resource) -> Result<Result<Subscription, String>, TemplateError> {
        let at = format!("Resources.{}.Properties", r.logical_id);
        let props = &r.properties;
        let protocol = self.string(
            props
                .get("Protocol")
                .ok_or_else(|| invalid(&at, "has no Protocol"))?,
            &format!("{at}.Protocol"),
            0,
        )?;
        if protocol != "sqs" {
            return Ok(Err(format!("protocol {protocol} is not emulated")));
        }
        let topic = props.get("TopicArn").and_then(target_of);
        let queue = props.get("Endpoint").and_then(target_of);
        let (Some((topic, _)), Some((queue, _))) = (topic, queue) else {
            return Ok(Err(
                "topic or endpoint is not a resource of this template".into()
            ));
        };
        let raw_message_delivery = match props.get("RawMessageDelivery") {
            Some(v) => self.flag(v, &format!("{at}.RawMessageDelivery"), 0)?,
            None => false,
        };
        let filter_policy = match props.get("FilterPolicy") {
            None => None,
            Some(v) => Some(match self.eval(v, &format!("{at}.FilterPolicy"), 0)? {
                Some(Json::String(text)) => serde_json::from_str(&text)
                    .map_err(|e| invalid(&at, format!("FilterPolicy is not JSON: {e}")))?,
                Some(other) => other,
                None => Json::Null,
            }),
        };
        let filter_policy_scope = match props.get("FilterPolicyScope") {
            None => None,
            Some(v) => Some(self.string(v, &format!("{at}.FilterPolicyScope"), 0)?),
        };
        Ok(Ok(Subscription {
            logical_id: r.logical_id.clone(),
            topic,
            queue,
            raw_message_delivery,
            filter_policy,
            filter_policy_scope,
        }))
    }

    fn function(&self, r: &Resource) -> Result<Function, TemplateError> {
        let id = &r.logical_id;
        let at = format!("Resources.{id}.Properties");
        let props = &r.properties;
        let globals = &self.template.function_globals;
        let binary = r
            .metadata
            .get("BuildProperties")
            .and_then(|b| b.get("Binary"))
            .ok_or_else(|| {
                invalid(
                    &format!("Resources.{id}.Metadata.BuildProperties.Binary"),
                    "missing: the runner finds a function's code by its binary name",
                )
            })?;
        let binary = self.string(binary, &format!("Resources.{id}.Metadata"), 0)?;
        let setting = |key: &str| props.get(key).or_else(|| globals.get(key));
        let timeout = match setting("Timeout") {
            Some(v) => u64::from(self.number(v, &format!("{at}.Timeout"))?),
            None => DEFAULT_TIMEOUT_SECONDS,
        };
        let memory_size = match setting("MemorySize") {
            Some(v) => self.number(v, &format!("{at}.MemorySize"))?,
            None => DEFAULT_MEMORY_MB,
        };
        let mut environment = BTreeMap::new();
        for source in [globals, props] {
            if let Some(Yaml::Mapping(vars)) =
                source.get("Environment").and_then(|e| e.get("Variables"))
            {
                for (key, value) in vars {
                    environment.insert(key_string(key, &at)?, value.clone());
                }
            }
        }
        let mut events = Vec::new();
        if let Some(Yaml::Mapping(declared)) = props.get("Events") {
            for (name, event) in declared {
                let name = key_string(name, &at)?;
                if let Some(source) = self.event_source(id, &name, event)? {
                    events.push(source);
                }
            }
        }
        let name = self.physical_name(r, 0)?;
        Ok(Function {
            logical_id: id.clone(),
            name,
            binary,
            timeout: Duration::from_secs(timeout),
            memory_size,
            environment,
            events,
        })
    }

    fn event_source(
        &self,
        function: &str,
        name: &str,
        event: &Yaml,
    ) -> Result<Option<EventSource>, TemplateError> {
        let at = format!("Resources.{function}.Properties.Events.{name}");
        let event_type = self.string(
            event
                .get("Type")
                .ok_or_else(|| invalid(&at, "has no Type"))?,
            &at,
            0,
        )?;
        let props = event.get("Properties").cloned().unwrap_or(Yaml::Null);
        let at = format!("{at}.Properties");
        if let Some(enabled) = props.get("Enabled")
            && !self.flag(enabled, &format!("{at}.Enabled"), 0)?
        {
            return Ok(None);
        }
        let number_or = |key: &str, default: u32| match props.get(key) {
            Some(v) => self.number(v, &format!("{at}.{key}")),
            None => Ok(default),
        };
        let reports_failures = || -> Result<bool, TemplateError> {
            Ok(match props.get("FunctionResponseTypes") {
                Some(v) => match self.eval(v, &at, 0)? {
                    Some(Json::Array(types)) => types
                        .iter()
                        .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
                    _ => false,
                },
                None => false,
            })
        };
        let filters = || -> Result<Vec<Json>, TemplateError> {
            let Some(criteria) = props.get("FilterCriteria") else {
                return Ok(Vec::new());
            };
            let criteria = self.eval(criteria, &format!("{at}.FilterCriteria"), 0)?;
            let mut patterns = Vec::new();
            if let Some(filters) = criteria.as_ref().and_then(|c| c["Filters"].as_array()) {
                for filter in filters {
                    let pattern = match &filter["Pattern"] {
                        Json::String(text) => serde_json::from_str(text).map_err(|e| {
                            invalid(&at, format!("FilterCriteria pattern is not JSON: {e}"))
                        })?,
                        other => other.clone(),
                    };
                    patterns.push(pattern);
                }
            }
            Ok(patterns)
        };
        let reference = |key: &str, what: &str| -> Result<String, TemplateError> {
            let value = props
                .get(key)
                .ok_or_else(|| invalid(&at, format!("has no {key}")))?;
            target_of(value).map(|(id, _)| id).ok_or_else(|| {
                invalid(
                    &format!("{at}.{key}"),
                    format!("must reference {what} of this template"),
                )
            })
        };
        Ok(Some(match event_type.as_str() {
            "SQS" => EventSource::Sqs(SqsSource {
                name: name.to_owned(),
                queue: reference("Queue", "a queue")?,
                batch_size: number_or("BatchSize", DEFAULT_SQS_BATCH_SIZE)?,
                report_batch_item_failures: reports_failures()?,
                filters: filters()?,
            }),
            "DynamoDB" => {
                let position = self.string(
                    props
                        .get("StartingPosition")
                        .ok_or_else(|| invalid(&at, "has no StartingPosition"))?,
                    &at,
                    0,
                )?;
                let starting_position = match position.as_str() {
                    "TRIM_HORIZON" => StartingPosition::TrimHorizon,
                    "LATEST" => StartingPosition::Latest,
                    other => {
                        return Err(invalid(
                            &at,
                            format!("StartingPosition {other} is not emulated"),
                        ));
                    }
                };
                let retries = match props.get("MaximumRetryAttempts") {
                    None => None,
                    Some(v) => {
                        let text = self.string(v, &at, 0)?;
                        // -1 is "retry until the record expires".
                        if text.trim() == "-1" {
                            None
                        } else {
                            Some(self.number(v, &format!("{at}.MaximumRetryAttempts"))?)
                        }
                    }
                };
                let on_failure = props
                    .get("DestinationConfig")
                    .and_then(|d| d.get("OnFailure"))
                    .and_then(|o| o.get("Destination"))
                    .and_then(target_of)
                    .map(|(id, _)| id);
                EventSource::DynamoDb(StreamSource {
                    name: name.to_owned(),
                    table: reference("Stream", "a table's StreamArn")?,
                    starting_position,
                    batch_size: number_or("BatchSize", DEFAULT_STREAM_BATCH_SIZE)?,
                    maximum_retry_attempts: retries,
                    report_batch_item_failures: reports_failures()?,
                    filters: filters()?,
                    on_failure,
                })
            }
            "HttpApi" => {
                let method = match props.get("Method") {
                    Some(v) => self
                        .string(v, &format!("{at}.Method"), 0)?
                        .to_ascii_uppercase(),
                    None => "ANY".to_owned(),
                };
                let path = match props.get("Path") {
                    Some(v) => self.string(v, &format!("{at}.Path"), 0)?,
                    None => "$default".to_owned(),
                };
                EventSource::HttpApi(HttpRoute {
                    name: name.to_owned(),
                    method: if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
                        "ANY".to_owned()
                    } else {
                        method
                    },
                    path,
                })
            }
            other => EventSource::Other {
                name: name.to_owned(),
                event_type: other.to_owned(),
            },
        }))
    }
}

fn str_field(value: &Json, key: &str, at: &str) -> Result<String, TemplateError> {
    value[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, format!("{key} must be a string")))
}

fn yaml_number(n: &serde_norway::Number) -> Json {
    if let Some(i) = n.as_i64() {
        Json::from(i)
    } else if let Some(u) = n.as_u64() {
        Json::from(u)
    } else {
        n.as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Json::Null, Json::Number)
    }
}

fn json_string(value: &Json, at: &str) -> Result<String, TemplateError> {
    match value {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        _ => Err(invalid(at, format!("expected a string, found {value}"))),
    }
}

fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
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

/// What a template declares for one stack, in the terms the runner works in.
#[derive(Debug, Clone, Serialize)]
pub struct Stack {
    /// The stack's pseudo parameters.
    pub pseudo: PseudoParameters,
    /// DynamoDB tables.
    pub tables: Vec<Table>,
    /// SNS topics.
    pub topics: Vec<Topic>,
    /// SQS queues.
    pub queues: Vec<Queue>,
    /// SNS → SQS subscriptions.
    pub subscriptions: Vec<Subscription>,
    /// Lambda functions.
    pub functions: Vec<Function>,
    /// Resources the runner does not emulate.
    pub ignored: Vec<Ignored>,
}

impl Stack {
    /// A table by logical id.
    pub fn table(&self, logical_id: &str) -> Option<&Table> {
        self.tables.iter().find(|t| t.logical_id == logical_id)
    }

    /// A topic by logical id.
    pub fn topic(&self, logical_id: &str) -> Option<&Topic> {
        self.topics.iter().find(|t| t.logical_id == logical_id)
    }

    /// A queue by logical id.
    pub fn queue(&self, logical_id: &str) -> Option<&Queue> {
        self.queues.iter().find(|q| q.logical_id == logical_id)
    }

    /// A function by logical id.
    pub fn function(&self, logical_id: &str) -> Option<&Function> {
        self.functions.iter().find(|f| f.logical_id == logical_id)
    }

    /// Queues ordered so that every dead-letter queue comes before the queues that use it.
    pub fn queues_dlq_first(&self) -> Vec<&Queue> {
        let mut ordered: Vec<&Queue> = Vec::with_capacity(self.queues.len());
        fn visit<'a>(
            stack: &'a Stack,
            queue: &'a Queue,
            ordered: &mut Vec<&'a Queue>,
            depth: usize,
        ) {
            if ordered.iter().any(|q| q.logical_id == queue.logical_id)
                || depth > stack.queues.len()
            {
                return;
            }
            if let Some(dlq) = queue
                .redrive
                .as_ref()
                .and_then(|r| stack.queue(&r.dead_letter_queue))
            {
                visit(stack, dlq, ordered, depth + 1);
            }
            ordered.push(queue);
        }
        for queue in &self.queues {
            visit(self, queue, &mut ordered, 0);
        }
        ordered
    }

    /// Whether a queue is some other queue's dead-letter queue.
    pub fn is_dead_letter_queue(&self, logical_id: &str) -> bool {
        self.queues.iter().any(|q| {
            q.redrive
                .as_ref()
                .is_some_and(|r| r.dead_letter_queue == logical_id)
        })
    }

    fn check_references(&self) -> Result<(), TemplateError> {
        let missing = |at: String, what: &str, id: &str| {
            invalid(&at, format!("{id} is not a {what} of this template"))
        };
        for q in &self.queues {
            if let Some(r) = &q.redrive
                && self.queue(&r.dead_letter_queue).is_none()
            {
                return Err(missing(
                    format!("Resources.{}.RedrivePolicy", q.logical_id),
                    "queue",
                    &r.dead_letter_queue,
                ));
            }
        }
        for s in &self.subscriptions {
            let at = format!("Resources.{}", s.logical_id);
            if self.topic(&s.topic).is_none() {
                return Err(missing(at.clone(), "topic", &s.topic));
            }
            if self.queue(&s.queue).is_none() {
                return Err(missing(at, "queue", &s.queue));
            }
        }
        for f in &self.functions {
            for event in &f.events {
                let at = format!("Resources.{}.Events", f.logical_id);
                match event {
                    EventSource::Sqs(s) if self.queue(&s.queue).is_none() => {
                        return Err(missing(at, "queue", &s.queue));
                    }
                    EventSource::DynamoDb(s) => {
                        let table = self
                            .table(&s.table)
                            .ok_or_else(|| missing(at.clone(), "table", &s.table))?;
                        if table.stream_view_type.is_none() {
                            return Err(invalid(&at, format!("table {} has no stream", s.table)));
                        }
                        if let Some(dest) = &s.on_failure
                            && self.queue(dest).is_none()
                        {
                            return Err(missing(at, "queue", dest));
                        }
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// A DynamoDB table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Table {
    /// Logical id.
    pub logical_id: String,
    /// Table name.
    pub name: String,
    /// Primary key.
    pub key_schema: Vec<KeyElement>,
    /// Types of the key attributes (table and indexes).
    pub attribute_definitions: Vec<AttributeDefinition>,
    /// Global secondary indexes.
    pub global_secondary_indexes: Vec<SecondaryIndex>,
    /// `StreamSpecification.StreamViewType`, when the table has a stream.
    pub stream_view_type: Option<String>,
    /// The TTL attribute, when TTL is enabled.
    pub ttl_attribute: Option<String>,
}

/// One element of a key schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyElement {
    /// Attribute name.
    pub attribute_name: String,
    /// `HASH` or `RANGE`.
    pub key_type: String,
}

/// The type of a key attribute.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AttributeDefinition {
    /// Attribute name.
    pub attribute_name: String,
    /// `S`, `N` or `B`.
    pub attribute_type: String,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SecondaryIndex {
    /// Index name.
    pub index_name: String,
    /// Its key.
    pub key_schema: Vec<KeyElement>,
    /// `ALL`, `KEYS_ONLY` or `INCLUDE`.
    pub projection_type: String,
    /// Attributes projected with `INCLUDE`.
    pub non_key_attributes: Vec<String>,
}

/// An SNS topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Topic {
    /// Logical id.
    pub logical_id: String,
    /// Topic name.
    pub name: String,
    /// A FIFO topic.
    pub fifo: bool,
    /// FIFO deduplication by content.
    pub content_based_deduplication: bool,
}

/// An SQS queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Queue {
    /// Logical id.
    pub logical_id: String,
    /// Queue name.
    pub name: String,
    /// A FIFO queue.
    pub fifo: bool,
    /// FIFO deduplication by content.
    pub content_based_deduplication: bool,
    /// Visibility timeout in seconds.
    pub visibility_timeout: Option<u32>,
    /// Retention in seconds.
    pub message_retention_period: Option<u32>,
    /// Delivery delay in seconds.
    pub delay_seconds: Option<u32>,
    /// Where messages go after too many receives.
    pub redrive: Option<Redrive>,
}

/// A queue's redrive policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redrive {
    /// Logical id of the dead-letter queue.
    pub dead_letter_queue: String,
    /// Receives before a message moves there.
    pub max_receive_count: u32,
}

/// An SNS subscription delivering to one of the template's queues.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Subscription {
    /// Logical id.
    pub logical_id: String,
    /// Logical id of the topic.
    pub topic: String,
    /// Logical id of the queue.
    pub queue: String,
    /// Deliver the message itself rather than an SNS notification.
    pub raw_message_delivery: bool,
    /// The filter policy, as JSON.
    pub filter_policy: Option<Json>,
    /// `MessageAttributes` (default) or `MessageBody`.
    pub filter_policy_scope: Option<String>,
}

/// A Lambda function.
#[derive(Debug, Clone, Serialize)]
pub struct Function {
    /// Logical id.
    pub logical_id: String,
    /// Function name.
    pub name: String,
    /// The cargo binary (`Metadata.BuildProperties.Binary`).
    pub binary: String,
    /// Timeout (the function's, else `Globals`', else 3 s).
    pub timeout: Duration,
    /// Memory size in MB.
    pub memory_size: u32,
    /// Environment variables, unresolved (see [`Resolver::environment`]).
    #[serde(skip)]
    pub environment: BTreeMap<String, Yaml>,
    /// The event sources it runs behind.
    pub events: Vec<EventSource>,
}

/// An event that invokes a function.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum EventSource {
    /// An SQS event source mapping.
    Sqs(SqsSource),
    /// A DynamoDB stream event source mapping.
    DynamoDb(StreamSource),
    /// An HTTP API route.
    HttpApi(HttpRoute),
    /// Any other event type (not emulated).
    Other {
        /// The event's name in the template.
        name: String,
        /// Its type.
        event_type: String,
    },
}

/// An SQS event source mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqsSource {
    /// The event's name in the template.
    pub name: String,
    /// Logical id of the queue.
    pub queue: String,
    /// Messages per invocation (1-10 here: one ReceiveMessage).
    pub batch_size: u32,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `FilterCriteria` patterns.
    pub filters: Vec<Json>,
}

/// A DynamoDB stream event source mapping.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StreamSource {
    /// The event's name in the template.
    pub name: String,
    /// Logical id of the table.
    pub table: String,
    /// Where a new mapping starts reading.
    pub starting_position: StartingPosition,
    /// Records per invocation.
    pub batch_size: u32,
    /// Retries of a failing batch; `None` retries until the record expires.
    pub maximum_retry_attempts: Option<u32>,
    /// `FunctionResponseTypes: [ReportBatchItemFailures]`.
    pub report_batch_item_failures: bool,
    /// `FilterCriteria` patterns.
    pub filters: Vec<Json>,
    /// Logical id of the on-failure destination queue.
    pub on_failure: Option<String>,
}

/// Where a stream mapping starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum StartingPosition {
    /// The oldest record still in the stream.
    TrimHorizon,
    /// Only records written after the mapping starts.
    Latest,
}

/// An HTTP API route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HttpRoute {
    /// The event's name in the template.
    pub name: String,
    /// Upper-case method, or `ANY`.
    pub method: String,
    /// Path template (`/orders/{id}`), or `$default`.
    pub path: String,
}

impl HttpRoute {
    /// The route key API Gateway reports: `POST /orders`, or `$default`.
    pub fn route_key(&self) -> String {
        if self.path == "$default" {
            self.path.clone()
        } else {
            format!("{} {}", self.method, self.path)
        }
    }
}

/// A resource the runner leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ignored {
    /// Logical id.
    pub logical_id: String,
    /// Its type.
    pub resource_type: String,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests;
