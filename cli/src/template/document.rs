//! A template as written: the YAML parsed into its sections, nothing resolved yet.

use std::collections::BTreeMap;
use std::path::Path;

use serde_norway::Value as Yaml;

use super::error::{TemplateError, invalid};
use super::model::Stack;
use super::pseudo::PseudoParameters;
use super::resolver::Resolver;

/// A parsed template: parameters, conditions, `Globals.Function` and resources, unresolved.
#[derive(Debug, Clone)]
pub struct Template {
    pub(super) parameters: BTreeMap<String, Option<Yaml>>,
    pub(super) conditions: BTreeMap<String, Yaml>,
    pub(super) function_globals: Yaml,
    pub(super) resources: BTreeMap<String, Resource>,
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

/// A mapping key that must be a string.
pub(super) fn key_string(key: &Yaml, at: &str) -> Result<String, TemplateError> {
    key.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid(at, "keys must be strings"))
}
