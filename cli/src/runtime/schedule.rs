//! The EventBridge schedule: a function invoked every `rate` with a `Scheduled Event`, the first
//! time one rate after the runtime starts (as a new rule first fires one rate after it is made).
//! A failed invocation is logged and counted; the next tick comes as usual.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::LocalFunction;
use crate::template::ScheduleSource;

/// One schedule of one function.
pub struct ScheduleMapping {
    /// The function invoked.
    pub function: Arc<LocalFunction>,
    /// The schedule.
    pub source: ScheduleSource,
    /// The region (the event's `region`).
    pub region: String,
    /// The stack (names the rule in `resources`).
    pub stack_name: String,
}

impl ScheduleMapping {
    /// Ticks until `stop` is cancelled; an invocation running then is finished first.
    pub async fn run(self, stop: CancellationToken) {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.source.every) => {}
            }
            let _ = self.function.invoke(self.event()).await;
        }
    }

    /// The `Scheduled Event` EventBridge sends.
    fn event(&self) -> Value {
        let rule = format!(
            "arn:aws:events:{}:000000000000:rule/{}-{}{}",
            self.region, self.stack_name, self.function.logical_id, self.source.name
        );
        json!({
            "version": "0",
            "id": uuid::Uuid::new_v4().to_string(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": "000000000000",
            "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": self.region,
            "resources": [rule],
            "detail": {},
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use lambda_runtime::LambdaEvent;

    use super::*;
    use crate::provision::DeployedFunction;
    use crate::runtime::{Stats, invoke_fn};

    #[tokio::test]
    async fn a_scheduled_function_is_invoked_every_rate_with_a_scheduled_event() {
        let deployed = DeployedFunction {
            logical_id: "Sweeper".into(),
            name: "s-sweeper".into(),
            arn: "arn:aws:lambda:us-east-1:000000000000:function:s-sweeper".into(),
            binary: "sweeper".into(),
            timeout: Duration::from_secs(5),
            environment: BTreeMap::new(),
            events: Vec::new(),
        };
        let (sent, mut received) = tokio::sync::mpsc::unbounded_channel();
        let invoke = invoke_fn(move |event: LambdaEvent<Value>| {
            let sent = sent.clone();
            async move {
                let _ = sent.send(event.payload);
                Ok::<_, lambda_runtime::Error>(Value::Null)
            }
        });
        let stats = Arc::new(Stats::new(["Sweeper"]));
        let mapping = ScheduleMapping {
            function: Arc::new(LocalFunction::new(&deployed, invoke, stats)),
            source: ScheduleSource {
                name: "Often".into(),
                every: Duration::from_millis(50),
            },
            region: "us-east-1".into(),
            stack_name: "s".into(),
        };
        let stop = CancellationToken::new();
        let ticking = tokio::spawn(mapping.run(stop.clone()));
        let first = received.recv().await.unwrap();
        let second = received.recv().await.unwrap();
        stop.cancel();
        ticking.await.unwrap();
        assert_eq!(first["detail-type"], "Scheduled Event");
        assert_eq!(first["source"], "aws.events");
        assert_eq!(
            first["resources"][0],
            "arn:aws:events:us-east-1:000000000000:rule/s-SweeperOften"
        );
        assert_ne!(first["id"], second["id"]);
    }
}
