//! The intrinsic functions that compute a value from their arguments: `Fn::Join`, `Fn::Split`,
//! `Fn::Select`, `Fn::If`, `Fn::Base64` and `Fn::FindInMap` (with the `DefaultValue` of
//! `AWS::LanguageExtensions`).

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::error::{TemplateError, invalid};
use super::resolver::{Resolver, json_string};

impl Resolver<'_> {
    pub(super) fn join(&self, arg: &Yaml, at: &str, depth: u8) -> Result<String, TemplateError> {
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
        Ok(strings.join(&delimiter))
    }

    pub(super) fn split(&self, arg: &Yaml, at: &str, depth: u8) -> Result<Json, TemplateError> {
        let parts = arg
            .as_sequence()
            .filter(|p| p.len() == 2)
            .ok_or_else(|| invalid(at, "!Split takes [delimiter, string]"))?;
        let delimiter = self.string(&parts[0], at, depth)?;
        if delimiter.is_empty() {
            return Err(invalid(at, "!Split's delimiter must not be empty"));
        }
        let text = self.string(&parts[1], at, depth)?;
        Ok(Json::Array(
            text.split(delimiter.as_str())
                .map(|part| Json::String(part.to_owned()))
                .collect(),
        ))
    }

    pub(super) fn select(&self, arg: &Yaml, at: &str, depth: u8) -> Result<Json, TemplateError> {
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
                .ok_or_else(|| invalid(at, "!Select's index is out of range")),
            _ => Err(invalid(at, "!Select's second argument must be a list")),
        }
    }

    /// `Fn::If`: the branch its condition picks.
    pub(super) fn choose(
        &self,
        arg: &Yaml,
        at: &str,
        depth: u8,
    ) -> Result<Option<Json>, TemplateError> {
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

    pub(super) fn base64(&self, arg: &Yaml, at: &str, depth: u8) -> Result<String, TemplateError> {
        use base64::Engine as _;
        let text = self.string(arg, at, depth)?;
        Ok(base64::engine::general_purpose::STANDARD.encode(text))
    }

    /// `Fn::FindInMap: [MapName, TopLevelKey, SecondLevelKey, {DefaultValue: ...}?]`.
    pub(super) fn find_in_map(
        &self,
        arg: &Yaml,
        at: &str,
        depth: u8,
    ) -> Result<Json, TemplateError> {
        let usage = "!FindInMap takes [MapName, TopLevelKey, SecondLevelKey] and an optional {DefaultValue: ...}";
        let parts = arg
            .as_sequence()
            .filter(|p| p.len() == 3 || p.len() == 4)
            .ok_or_else(|| invalid(at, usage))?;
        let keys = parts[..3]
            .iter()
            .map(|key| self.string(key, at, depth))
            .collect::<Result<Vec<_>, _>>()?;
        let found = self
            .template
            .mappings
            .get(&keys[0])
            .and_then(|map| map.get(keys[1].as_str()))
            .and_then(|top| top.get(keys[2].as_str()));
        let value = match (found, parts.get(3)) {
            (Some(value), _) => value,
            (None, Some(default)) => default
                .get("DefaultValue")
                .ok_or_else(|| invalid(at, usage))?,
            (None, None) => {
                return Err(invalid(
                    at,
                    format!("Mappings has no {}.{}.{}", keys[0], keys[1], keys[2]),
                ));
            }
        };
        Ok(self.eval(value, at, depth)?.unwrap_or(Json::Null))
    }
}
