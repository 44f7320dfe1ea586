//! The resolver: every intrinsic function of a template evaluated for one stack, into plain JSON.
//!
//! Conditions are in `conditions`, and what `!Ref` and `!GetAtt` return for each resource type
//! in `attributes`.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::REF;
use super::document::Template;
use super::error::{TemplateError, invalid};
use super::intrinsic::{Intrinsic, get_att_parts, intrinsic};
use super::model::Function;
use super::pseudo::PseudoParameters;

/// Guards against reference cycles (a name that `!Sub`s a `!Ref` to itself).
pub(super) const MAX_DEPTH: u8 = 32;

/// Resolves intrinsic functions for one stack.
///
/// A resource's `!Ref` and `!GetAtt` values are what CloudFormation returns for its type,
/// predicted from its name, region and account, unless the real value has been recorded with
/// [`know`](Self::know): the provisioner records what the services return (the emulator's
/// ARNs and queue URLs), so nothing the service can tell is ever made up.
#[derive(Debug, Clone)]
pub struct Resolver<'t> {
    pub(super) template: &'t Template,
    pub(super) pseudo: PseudoParameters,
    parameters: BTreeMap<String, String>,
    pub(super) known: BTreeMap<(String, String), String>,
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

    pub(super) fn eval(
        &self,
        value: &Yaml,
        at: &str,
        depth: u8,
    ) -> Result<Option<Json>, TemplateError> {
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

    pub(super) fn string(
        &self,
        value: &Yaml,
        at: &str,
        depth: u8,
    ) -> Result<String, TemplateError> {
        match self.eval(value, at, depth)? {
            Some(v) => json_string(&v, at),
            None => Ok(String::new()),
        }
    }

    pub(super) fn call(
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
            "Fn::Join" => self.join(arg, at, depth).map(|s| Some(Json::String(s))),
            "Fn::Select" => self.select(arg, at, depth).map(Some),
            "Fn::Split" => self.split(arg, at, depth).map(Some),
            "Fn::If" => self.choose(arg, at, depth),
            "Fn::Equals" | "Fn::Not" | "Fn::And" | "Fn::Or" | "Condition" => {
                let value = Yaml::Tagged(Box::new(serde_norway::value::TaggedValue {
                    tag: serde_norway::value::Tag::new(name.trim_start_matches("Fn::")),
                    value: arg.clone(),
                }));
                self.condition_value(&value, at, depth)
                    .map(|b| Some(Json::Bool(b)))
            }
            "Fn::Base64" => self.base64(arg, at, depth).map(|s| Some(Json::String(s))),
            "Fn::FindInMap" => self.find_in_map(arg, at, depth).map(Some),
            other => Err(TemplateError::Unsupported {
                at: at.to_owned(),
                function: other.to_owned(),
            }),
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

    pub(super) fn reference_value(
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

    pub(super) fn flag(&self, value: &Yaml, at: &str, depth: u8) -> Result<bool, TemplateError> {
        match self.eval(value, at, depth)? {
            None | Some(Json::Null) => Ok(false),
            Some(Json::Bool(b)) => Ok(b),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("true") => Ok(true),
            Some(Json::String(s)) if s.eq_ignore_ascii_case("false") => Ok(false),
            _ => Err(invalid(at, "expected true or false")),
        }
    }

    pub(super) fn number(&self, value: &Yaml, at: &str) -> Result<u32, TemplateError> {
        let text = self.string(value, at, 0)?;
        text.trim()
            .parse()
            .map_err(|_| invalid(at, format!("expected a whole number, found {text:?}")))
    }
}

pub(super) fn yaml_number(n: &serde_norway::Number) -> Json {
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

pub(super) fn json_string(value: &Json, at: &str) -> Result<String, TemplateError> {
    match value {
        Json::String(s) => Ok(s.clone()),
        Json::Number(n) => Ok(n.to_string()),
        Json::Bool(b) => Ok(b.to_string()),
        _ => Err(invalid(at, format!("expected a string, found {value}"))),
    }
}

pub(super) fn scalar_text(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}
