//! A template as written: the YAML parsed into its sections, nothing resolved yet.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value as Yaml;

use super::error::{TemplateError, invalid};
use super::foreach::{self, LANGUAGE_EXTENSIONS};
use super::model::Stack;
use super::pseudo::PseudoParameters;
use super::resolver::Resolver;

/// A parsed template: parameters, mappings, conditions, `Globals.Function`, resources and
/// outputs, with `Fn::ForEach` loops expanded and nothing resolved yet.
#[derive(Debug, Clone)]
pub struct Template {
    pub(super) parameters: BTreeMap<String, Option<Yaml>>,
    allowed_values: BTreeMap<String, Vec<String>>,
    pub(super) mappings: BTreeMap<String, Yaml>,
    pub(super) conditions: BTreeMap<String, Yaml>,
    pub(super) function_globals: Yaml,
    pub(super) resources: BTreeMap<String, Resource>,
    pub(super) outputs: BTreeMap<String, Yaml>,
}

/// One resource as written in the template.
#[derive(Debug, Clone)]
pub struct Resource {
    /// Its logical id.
    pub logical_id: String,
    /// `Type`, e.g. `AWS::SQS::Queue`.
    pub resource_type: String,
    pub(super) properties: Yaml,
    pub(super) metadata: Yaml,
    pub(super) condition: Option<String>,
}

impl Resource {
    /// Its `Properties`, unresolved (see [`Resolver::resolve`]).
    pub fn properties(&self) -> &Yaml {
        &self.properties
    }
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
        let mut allowed_values = BTreeMap::new();
        for (name, body) in section(&root, "Parameters")? {
            if let Some(Yaml::Sequence(values)) = body.get("AllowedValues") {
                let values = values.iter().map(scalar_text).collect();
                allowed_values.insert(name.clone(), values);
            }
            parameters.insert(name, body.get("Default").cloned());
        }
        let mut loops = 0;
        let conditions = expanded(&root, "Conditions", &mut loops)?;
        let Some(Yaml::Mapping(_)) = root.get("Resources") else {
            return Err(invalid("Resources", "the template declares no resources"));
        };
        let mut resources = BTreeMap::new();
        for (logical_id, body) in expanded(&root, "Resources", &mut loops)? {
            resources.insert(logical_id.clone(), Resource::parse(logical_id, &body)?);
        }
        let outputs = expanded(&root, "Outputs", &mut loops)?;
        if loops > 0 && !transforms(&root).contains(&LANGUAGE_EXTENSIONS) {
            return Err(invalid(
                "Transform",
                format!("Fn::ForEach needs the {LANGUAGE_EXTENSIONS} transform"),
            ));
        }
        Ok(Template {
            parameters,
            allowed_values,
            mappings: section(&root, "Mappings")?.into_iter().collect(),
            conditions,
            function_globals: root
                .get("Globals")
                .and_then(|g| g.get("Function"))
                .cloned()
                .unwrap_or(Yaml::Null),
            resources,
            outputs,
        })
    }

    /// Every output, by name, unresolved.
    pub fn outputs(&self) -> impl Iterator<Item = (&str, &Yaml)> {
        self.outputs
            .iter()
            .map(|(name, body)| (name.as_str(), body))
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

    /// A resolver with `overrides` (name, value) in place of the parameters' defaults, as
    /// `sam deploy --parameter-overrides` gives them: a name the template does not declare, or a
    /// value outside its `AllowedValues`, is refused with what it does accept.
    pub fn resolver_with(
        &self,
        pseudo: PseudoParameters,
        overrides: &[(String, String)],
    ) -> Result<Resolver<'_>, TemplateError> {
        let mut resolver = self.resolver(pseudo);
        for (name, value) in overrides {
            if !self.parameters.contains_key(name) {
                let known: Vec<&str> = self.parameters.keys().map(String::as_str).collect();
                return Err(invalid(
                    &format!("Parameters.{name}"),
                    format!("no such parameter; the template has {}", known.join(", ")),
                ));
            }
            if let Some(allowed) = self.allowed_values.get(name)
                && !allowed.contains(value)
            {
                return Err(invalid(
                    &format!("Parameters.{name}"),
                    format!("{value:?} is not one of {}", allowed.join(", ")),
                ));
            }
            resolver = resolver.with_parameter(name, value);
        }
        Ok(resolver)
    }

    /// What the template declares for one stack, with parameter defaults.
    pub fn stack(&self, pseudo: PseudoParameters) -> Result<Stack, TemplateError> {
        self.resolver(pseudo).stack()
    }
}

/// A scalar as the text CloudFormation compares it as (`true`, `10`, `fifo`).
fn scalar_text(value: &Yaml) -> String {
    match value {
        Yaml::String(text) => text.clone(),
        Yaml::Bool(flag) => flag.to_string(),
        Yaml::Number(number) => number.to_string(),
        other => serde_norway::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_owned(),
    }
}

/// A mapping key that must be a string.
pub(super) fn key_string(key: &Yaml, at: &str) -> Result<String, TemplateError> {
    key.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, "keys must be strings"))
}

impl Resource {
    fn parse(logical_id: String, body: &Yaml) -> Result<Self, TemplateError> {
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
        Ok(Resource {
            logical_id,
            resource_type,
            properties: body.get("Properties").cloned().unwrap_or(Yaml::Null),
            metadata: body.get("Metadata").cloned().unwrap_or(Yaml::Null),
            condition,
        })
    }
}

/// The entries of a top-level section, in order; none if the template has no such section.
fn section(root: &Yaml, name: &str) -> Result<Vec<(String, Yaml)>, TemplateError> {
    entries(root.get(name), name)
}

fn entries(body: Option<&Yaml>, name: &str) -> Result<Vec<(String, Yaml)>, TemplateError> {
    match body {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Mapping(entries)) => entries
            .iter()
            .map(|(key, body)| Ok((key_string(key, name)?, body.clone())))
            .collect(),
        Some(_) => Err(invalid(name, "must be a mapping")),
    }
}

/// A section in which `Fn::ForEach` may stand for entries, with its loops expanded.
fn expanded(
    root: &Yaml,
    name: &str,
    loops: &mut usize,
) -> Result<BTreeMap<String, Yaml>, TemplateError> {
    let body = match root.get(name) {
        Some(body) => Some(foreach::expand(body, name, loops)?),
        None => None,
    };
    Ok(entries(body.as_ref(), name)?.into_iter().collect())
}

/// The names in `Transform` (one, or a list).
fn transforms(root: &Yaml) -> Vec<&str> {
    match root.get("Transform") {
        Some(Yaml::String(name)) => vec![name.as_str()],
        Some(Yaml::Sequence(names)) => names.iter().filter_map(Yaml::as_str).collect(),
        _ => Vec::new(),
    }
}
