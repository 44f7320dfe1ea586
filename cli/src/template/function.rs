//! Functions and their event sources: a `AWS::Serverless::Function` with `Globals.Function`
//! merged in, and each of its `Events` as the mapping or route the runtime emulates.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value as Json;
use serde_norway::Value as Yaml;

use super::document::{Resource, key_string};
use super::error::{TemplateError, invalid};
use super::intrinsic::target_of;
use super::model::{
    Authorization, EventSource, Function, HttpRoute, ScheduleSource, SqsSource, StartingPosition,
    StreamSource,
};
use super::resolver::Resolver;

/// SAM's default function timeout when neither the function nor `Globals` sets one.
const DEFAULT_TIMEOUT_SECONDS: u64 = 3;
/// SAM's default memory size.
const DEFAULT_MEMORY_MB: u32 = 128;
/// Lambda's default batch sizes per event source type.
const DEFAULT_SQS_BATCH_SIZE: u32 = 10;
const DEFAULT_STREAM_BATCH_SIZE: u32 = 100;

impl Resolver<'_> {
    pub(super) fn function(&self, r: &Resource) -> Result<Function, TemplateError> {
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
        let mut events = Vec::new();
        if let Some(Yaml::Mapping(declared)) = props.get("Events") {
            for (name, event) in declared {
                let name = key_string(name, &at)?;
                if let Some(source) = self.event_source(id, &name, event)? {
                    events.push(source);
                }
            }
        }
        Ok(Function {
            logical_id: id.clone(),
            name: self.physical_name(r, 0)?,
            binary,
            timeout: Duration::from_secs(timeout),
            memory_size,
            environment: environment(globals, props, &at)?,
            events,
        })
    }

    /// One of a function's `Events`; `None` for a mapping declared with `Enabled: false`.
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
        let event = EventProperties {
            resolver: self,
            name,
            props: event.get("Properties").cloned().unwrap_or(Yaml::Null),
            at: format!("{at}.Properties"),
        };
        if !event.enabled()? {
            return Ok(None);
        }
        Ok(Some(match event_type.as_str() {
            "SQS" => EventSource::Sqs(event.sqs()?),
            "DynamoDB" => EventSource::DynamoDb(event.stream()?),
            "HttpApi" => EventSource::HttpApi(event.http_route()?),
            "Schedule" | "ScheduleV2" => match event.rate()? {
                Some(every) => EventSource::Schedule(ScheduleSource {
                    name: name.to_owned(),
                    every,
                }),
                None => EventSource::Other {
                    name: name.to_owned(),
                    event_type: format!("{event_type} (a cron expression)"),
                },
            },
            other => EventSource::Other {
                name: name.to_owned(),
                event_type: other.to_owned(),
            },
        }))
    }
}

/// `Globals.Function.Environment.Variables` overlaid with the function's own, unresolved.
fn environment(
    globals: &Yaml,
    props: &Yaml,
    at: &str,
) -> Result<BTreeMap<String, Yaml>, TemplateError> {
    let mut environment = BTreeMap::new();
    for source in [globals, props] {
        if let Some(Yaml::Mapping(vars)) =
            source.get("Environment").and_then(|e| e.get("Variables"))
        {
            for (key, value) in vars {
                environment.insert(key_string(key, at)?, value.clone());
            }
        }
    }
    Ok(environment)
}

/// The `Properties` of one event, read with the resolver of its stack.
struct EventProperties<'r, 't> {
    resolver: &'r Resolver<'t>,
    name: &'r str,
    props: Yaml,
    at: String,
}

impl EventProperties<'_, '_> {
    fn enabled(&self) -> Result<bool, TemplateError> {
        match self.props.get("Enabled") {
            Some(enabled) => self
                .resolver
                .flag(enabled, &format!("{}.Enabled", self.at), 0),
            None => Ok(true),
        }
    }

    fn sqs(&self) -> Result<SqsSource, TemplateError> {
        Ok(SqsSource {
            name: self.name.to_owned(),
            queue: self.reference("Queue", "a queue")?,
            batch_size: self.number_or("BatchSize", DEFAULT_SQS_BATCH_SIZE)?,
            report_batch_item_failures: self.reports_failures()?,
            filters: self.filters()?,
        })
    }

    fn stream(&self) -> Result<StreamSource, TemplateError> {
        let on_failure = self
            .props
            .get("DestinationConfig")
            .and_then(|d| d.get("OnFailure"))
            .and_then(|o| o.get("Destination"))
            .and_then(target_of)
            .map(|(id, _)| id);
        Ok(StreamSource {
            name: self.name.to_owned(),
            table: self.reference("Stream", "a table's StreamArn")?,
            starting_position: self.starting_position()?,
            batch_size: self.number_or("BatchSize", DEFAULT_STREAM_BATCH_SIZE)?,
            maximum_retry_attempts: self.maximum_retry_attempts()?,
            maximum_record_age: self
                .unlimited_or("MaximumRecordAgeInSeconds")?
                .map(|s| Duration::from_secs(u64::from(s))),
            bisect_on_function_error: self.flag("BisectBatchOnFunctionError")?,
            report_batch_item_failures: self.reports_failures()?,
            filters: self.filters()?,
            on_failure,
        })
    }

    fn http_route(&self) -> Result<HttpRoute, TemplateError> {
        let method = match self.props.get("Method") {
            Some(v) => self.string(v, "Method")?.to_ascii_uppercase(),
            None => "ANY".to_owned(),
        };
        let path = match self.props.get("Path") {
            Some(v) => self.string(v, "Path")?,
            None => "$default".to_owned(),
        };
        Ok(HttpRoute {
            name: self.name.to_owned(),
            method: if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" {
                "ANY".to_owned()
            } else {
                method
            },
            path,
            authorization: self.authorization()?,
        })
    }

    /// The route's `Auth`: its own `Authorizer` (`NONE` for none), else its API's
    /// `Auth.DefaultAuthorizer`; only JWT authorizers are emulated.
    fn authorization(&self) -> Result<Authorization, TemplateError> {
        let auth = self.props.get("Auth");
        let api = self
            .props
            .get("ApiId")
            .and_then(target_of)
            .and_then(|(id, _)| self.resolver.template.resource(&id));
        let api_auth = api.and_then(|api| api.properties().get("Auth"));
        let named = match auth.and_then(|a| a.get("Authorizer")) {
            Some(name) => Some(self.string(name, "Auth.Authorizer")?),
            None => match api_auth.and_then(|a| a.get("DefaultAuthorizer")) {
                Some(name) => Some(self.string(name, "ApiId.Auth.DefaultAuthorizer")?),
                None => None,
            },
        };
        let Some(authorizer) = named.filter(|name| name != "NONE") else {
            return Ok(Authorization::None);
        };
        let declared = api_auth
            .and_then(|a| a.get("Authorizers"))
            .and_then(|a| a.get(authorizer.as_str()));
        if declared.and_then(|d| d.get("JwtConfiguration")).is_none() {
            return Err(invalid(
                &format!("{}.Auth", self.at),
                format!(
                    "authorizer {authorizer} is not a JWT authorizer of its API; only those are emulated"
                ),
            ));
        }
        let scopes = match auth.and_then(|a| a.get("AuthorizationScopes")) {
            Some(Yaml::Sequence(scopes)) => scopes
                .iter()
                .map(|s| self.string(s, "Auth.AuthorizationScopes"))
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(invalid(
                    &format!("{}.Auth.AuthorizationScopes", self.at),
                    "must be a list of scopes",
                ));
            }
            None => Vec::new(),
        };
        Ok(Authorization::Jwt { authorizer, scopes })
    }

    /// The `Schedule` (`ScheduleExpression` for ScheduleV2) as a rate; `None` for a cron one.
    fn rate(&self) -> Result<Option<Duration>, TemplateError> {
        let expression = self
            .props
            .get("Schedule")
            .or_else(|| self.props.get("ScheduleExpression"))
            .ok_or_else(|| invalid(&self.at, "has no Schedule"))?;
        let expression = self.string(expression, "Schedule")?;
        if expression.starts_with("cron(") {
            return Ok(None);
        }
        parse_rate(&expression)
            .map(Some)
            .ok_or_else(|| invalid(&self.at, format!("{expression:?} is not rate(<n> <unit>)")))
    }

    fn string(&self, value: &Yaml, key: &str) -> Result<String, TemplateError> {
        self.resolver
            .string(value, &format!("{}.{key}", self.at), 0)
    }

    fn number_or(&self, key: &str, default: u32) -> Result<u32, TemplateError> {
        match self.props.get(key) {
            Some(v) => self.resolver.number(v, &format!("{}.{key}", self.at)),
            None => Ok(default),
        }
    }

    fn starting_position(&self) -> Result<StartingPosition, TemplateError> {
        let position = self
            .props
            .get("StartingPosition")
            .ok_or_else(|| invalid(&self.at, "has no StartingPosition"))?;
        match self.resolver.string(position, &self.at, 0)?.as_str() {
            "TRIM_HORIZON" => Ok(StartingPosition::TrimHorizon),
            "LATEST" => Ok(StartingPosition::Latest),
            other => Err(invalid(
                &self.at,
                format!("StartingPosition {other} is not emulated"),
            )),
        }
    }

    /// `None` retries until the record expires (no setting, or -1).
    fn maximum_retry_attempts(&self) -> Result<Option<u32>, TemplateError> {
        self.unlimited_or("MaximumRetryAttempts")
    }

    /// A limit where `-1` (or no setting) means none.
    fn unlimited_or(&self, key: &str) -> Result<Option<u32>, TemplateError> {
        let Some(v) = self.props.get(key) else {
            return Ok(None);
        };
        if self.resolver.string(v, &self.at, 0)?.trim() == "-1" {
            return Ok(None);
        }
        let at = format!("{}.{key}", self.at);
        self.resolver.number(v, &at).map(Some)
    }

    fn flag(&self, key: &str) -> Result<bool, TemplateError> {
        match self.props.get(key) {
            Some(v) => self.resolver.flag(v, &format!("{}.{key}", self.at), 0),
            None => Ok(false),
        }
    }

    fn reports_failures(&self) -> Result<bool, TemplateError> {
        let Some(v) = self.props.get("FunctionResponseTypes") else {
            return Ok(false);
        };
        Ok(match self.resolver.eval(v, &self.at, 0)? {
            Some(Json::Array(types)) => types
                .iter()
                .any(|t| t.as_str() == Some("ReportBatchItemFailures")),
            _ => false,
        })
    }

    fn filters(&self) -> Result<Vec<Json>, TemplateError> {
        let Some(criteria) = self.props.get("FilterCriteria") else {
            return Ok(Vec::new());
        };
        let at = &self.at;
        let criteria = self
            .resolver
            .eval(criteria, &format!("{at}.FilterCriteria"), 0)?;
        let mut patterns = Vec::new();
        if let Some(filters) = criteria.as_ref().and_then(|c| c["Filters"].as_array()) {
            for filter in filters {
                let pattern = match &filter["Pattern"] {
                    Json::String(text) => serde_json::from_str(text).map_err(|e| {
                        invalid(at, format!("FilterCriteria pattern is not JSON: {e}"))
                    })?,
                    other => other.clone(),
                };
                patterns.push(pattern);
            }
        }
        Ok(patterns)
    }

    /// The logical id `key` references (`!GetAtt Queue.Arn` → `Queue`).
    fn reference(&self, key: &str, what: &str) -> Result<String, TemplateError> {
        let value = self
            .props
            .get(key)
            .ok_or_else(|| invalid(&self.at, format!("has no {key}")))?;
        target_of(value).map(|(id, _)| id).ok_or_else(|| {
            invalid(
                &format!("{}.{key}", self.at),
                format!("must reference {what} of this template"),
            )
        })
    }
}

/// `rate(5 minutes)` as a duration (units: minute(s), hour(s), day(s); at least one).
pub(super) fn parse_rate(expression: &str) -> Option<Duration> {
    let inner = expression.strip_prefix("rate(")?.strip_suffix(')')?;
    let (amount, unit) = inner.trim().split_once(' ')?;
    let amount: u64 = amount.parse().ok().filter(|n| *n > 0)?;
    let seconds = match unit.trim() {
        "minute" | "minutes" => 60,
        "hour" | "hours" => 3600,
        "day" | "days" => 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(amount.checked_mul(seconds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_eventbridge_reads_them() {
        assert_eq!(
            parse_rate("rate(5 minutes)"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_rate("rate(1 hour)"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_rate("rate(2 days)"),
            Some(Duration::from_secs(172_800))
        );
        for bad in [
            "rate(0 minutes)",
            "rate(5 weeks)",
            "every 5 minutes",
            "rate(five minutes)",
        ] {
            assert_eq!(parse_rate(bad), None, "{bad}");
        }
    }
}
