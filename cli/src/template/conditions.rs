//! Conditions: `Fn::Equals`, `Fn::Not`, `Fn::And`, `Fn::Or` and named conditions, evaluated to
//! whether a resource or an `Fn::If` branch is in.

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::error::{TemplateError, invalid};
use super::intrinsic::{Intrinsic, intrinsic};
use super::resolver::{MAX_DEPTH, Resolver, scalar_text};

impl Resolver<'_> {
    pub(super) fn named_condition(
        &self,
        name: &str,
        at: &str,
        depth: u8,
    ) -> Result<bool, TemplateError> {
        let body = self
            .template
            .conditions
            .get(name)
            .ok_or_else(|| invalid(at, format!("no condition named {name}")))?;
        self.condition_value(body, &format!("Conditions.{name}"), depth + 1)
    }

    pub(super) fn condition_value(
        &self,
        value: &Yaml,
        at: &str,
        depth: u8,
    ) -> Result<bool, TemplateError> {
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
}
