//! The fault plan at the SDK boundary: the [`Hook`] every function's AWS clients go through.
//!
//! One roll per call decides its fate: the rates of the SDK faults are consecutive slices of
//! `[0, 1)`, so a call gets at most one of them, each with its own rate. A fault that does not
//! apply to the call (a conflict on a read, a lost answer of a query) leaves it alone. Calls
//! to SNS during the outage are refused whatever the roll.

use std::sync::Arc;
use std::time::Duration;

use crate::boundary::{Broken, Call, Hook, Service, Verdict, WireError};

use super::plan::{FaultKind, Plan, Roll};

/// The SDK faults of a plan.
#[derive(Debug)]
pub struct SdkFaults {
    plan: Arc<Plan>,
    hold: Duration,
}

impl SdkFaults {
    /// Faults of `plan`; a timeout holds an answer for `hold` (longer than any function's
    /// timeout, so the invocation is cancelled first).
    pub fn new(plan: Arc<Plan>, hold: Duration) -> Self {
        SdkFaults { plan, hold }
    }
}

/// The SDK faults, in the order their slices of a roll are laid out.
const SLICES: [FaultKind; 5] = [
    FaultKind::Throttle,
    FaultKind::Transient,
    FaultKind::Conflict,
    FaultKind::LostAnswer,
    FaultKind::Timeout,
];

impl Hook for SdkFaults {
    fn before(&self, call: &Call) -> Verdict {
        if !matches!(
            call.service,
            Service::DynamoDb | Service::Sns | Service::Sqs
        ) {
            return Verdict::Forward;
        }
        if call.service == Service::Sns && self.plan.sns_down() {
            self.plan.count(FaultKind::Outage);
            return Verdict::Refuse(WireError::internal(Service::Sns));
        }
        let key = format!(
            "{}:{}:{}:{}",
            call.caller,
            call.service,
            call.operation,
            call.subject()
        );
        let roll = self.plan.roll_call(&key);
        let Some(kind) = slice_of(roll.unit(), |kind| self.plan.rates().of(kind)) else {
            return Verdict::Forward;
        };
        match verdict(kind, call, roll.then(), self.hold) {
            Some(verdict) => {
                self.plan.count(kind);
                verdict
            }
            None => Verdict::Forward,
        }
    }
}

/// The fault whose slice of `[0, 1)` holds `unit`, if any.
fn slice_of(unit: f64, rate: impl Fn(FaultKind) -> f64) -> Option<FaultKind> {
    let mut edge = 0.0;
    for kind in SLICES {
        edge += rate(kind);
        if unit < edge {
            return Some(kind);
        }
    }
    None
}

/// What `kind` does to `call`; `None` when it does not apply to it.
fn verdict(kind: FaultKind, call: &Call, roll: Roll, hold: Duration) -> Option<Verdict> {
    let dynamodb = call.service == Service::DynamoDb;
    let items = call.transaction_items();
    Some(match kind {
        FaultKind::Throttle if items > 0 && roll.hits(0.5) => Verdict::Refuse(
            WireError::transaction_throttled(items, roll.then().below(items)),
        ),
        FaultKind::Throttle if dynamodb && roll.hits(0.3) => {
            Verdict::Refuse(WireError::dynamodb_rate_exceeded())
        }
        FaultKind::Throttle => Verdict::Refuse(WireError::throttled(call.service)),
        FaultKind::Transient => match roll.below(4) {
            0 => Verdict::Refuse(WireError::internal(call.service)),
            1 => Verdict::Refuse(WireError::unavailable(call.service)),
            2 => Verdict::Break(Broken::Reset),
            _ => Verdict::Break(Broken::TimedOut),
        },
        FaultKind::Conflict if items > 0 => {
            Verdict::Refuse(WireError::transaction_conflicted(items, roll.below(items)))
        }
        FaultKind::Conflict if dynamodb && call.is_write() => {
            Verdict::Refuse(WireError::transaction_conflict())
        }
        FaultKind::LostAnswer if call.is_write() => match roll.below(3) {
            0 => Verdict::LoseAnswer(WireError::internal(call.service)),
            1 => Verdict::LoseConnection(Broken::TimedOut),
            _ => Verdict::LoseConnection(Broken::Reset),
        },
        FaultKind::Timeout => Verdict::Hold(hold),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::soak::plan::{Outage, Rates};

    fn call(service: Service, operation: &str, body: &str) -> Call {
        Call {
            caller: Arc::from("inventory"),
            service,
            operation: operation.to_owned(),
            body: body.as_bytes().to_vec(),
        }
    }

    fn only(kind: FaultKind) -> Rates {
        let mut rates = Rates {
            crash: 0.0,
            duplicate: 0.0,
            delay: 0.0,
            shuffle: 0.0,
            throttle: 0.0,
            transient: 0.0,
            conflict: 0.0,
            lost_answer: 0.0,
            timeout: 0.0,
        };
        match kind {
            FaultKind::Throttle => rates.throttle = 1.0,
            FaultKind::Transient => rates.transient = 1.0,
            FaultKind::Conflict => rates.conflict = 1.0,
            FaultKind::LostAnswer => rates.lost_answer = 1.0,
            FaultKind::Timeout => rates.timeout = 1.0,
            _ => {}
        }
        rates
    }

    fn faults(rates: Rates) -> (SdkFaults, Arc<Plan>) {
        let plan = Arc::new(Plan::new(9, rates, None));
        (SdkFaults::new(plan.clone(), Duration::from_secs(2)), plan)
    }

    const TRANSACTION: &str = r#"{"TransactItems":[{"Put":{"TableName":"t","Item":{"pk":{"S":"Stock#A"}}}},{"Put":{"TableName":"t","Item":{"pk":{"S":"dedupe#inventory#e"}}}}]}"#;

    #[test]
    fn a_throttled_transaction_is_cancelled_with_one_reason_per_item_or_throttled_whole() {
        let (hook, plan) = faults(only(FaultKind::Throttle));
        let mut cancelled = 0;
        for _ in 0..200 {
            match hook.before(&call(Service::DynamoDb, "TransactWriteItems", TRANSACTION)) {
                Verdict::Refuse(error) if error.code == "TransactionCanceledException" => {
                    assert_eq!(error.cancellation_reasons.len(), 2);
                    cancelled += 1;
                }
                Verdict::Refuse(error) => assert!(
                    [
                        "ProvisionedThroughputExceededException",
                        "ThrottlingException"
                    ]
                    .contains(&error.code)
                ),
                other => panic!("{other:?}"),
            }
        }
        assert!((60..140).contains(&cancelled), "{cancelled}");
        assert_eq!(plan.injected()[&FaultKind::Throttle], 200);
    }

    #[test]
    fn conflicts_and_lost_answers_strike_writes_only() {
        for kind in [FaultKind::Conflict, FaultKind::LostAnswer] {
            let (hook, plan) = faults(only(kind));
            let query = call(Service::DynamoDb, "Query", "{}");
            assert_eq!(hook.before(&query), Verdict::Forward, "{kind:?}");
            assert_eq!(plan.injected()[&kind], 0);
            let put = call(Service::DynamoDb, "PutItem", "{}");
            assert_ne!(hook.before(&put), Verdict::Forward, "{kind:?}");
            assert_eq!(plan.injected()[&kind], 1);
        }
        let (hook, _) = faults(only(FaultKind::Conflict));
        assert_eq!(
            hook.before(&call(Service::Sns, "Publish", "")),
            Verdict::Forward,
            "only DynamoDB has transactions"
        );
        let (hook, _) = faults(only(FaultKind::LostAnswer));
        assert!(matches!(
            hook.before(&call(Service::Sns, "PublishBatch", "")),
            Verdict::LoseAnswer(_) | Verdict::LoseConnection(_)
        ));
    }

    #[test]
    fn a_timeout_holds_the_answer_past_the_deadline() {
        let (hook, _) = faults(only(FaultKind::Timeout));
        assert_eq!(
            hook.before(&call(Service::DynamoDb, "Query", "{}")),
            Verdict::Hold(Duration::from_secs(2))
        );
    }

    #[test]
    fn sns_is_refused_while_it_is_down_and_streams_are_left_alone() {
        let outage = Outage {
            after_orders: 0,
            lasts: Duration::from_secs(60),
        };
        let plan = Arc::new(Plan::new(1, only(FaultKind::Crash), Some(outage)));
        let hook = SdkFaults::new(plan.clone(), Duration::from_secs(1));
        let publish = call(Service::Sns, "PublishBatch", "Action=PublishBatch");
        assert_eq!(hook.before(&publish), Verdict::Forward);
        plan.start_outage();
        assert!(matches!(hook.before(&publish), Verdict::Refuse(e) if e.status == 500));
        assert_eq!(
            hook.before(&call(Service::DynamoDb, "PutItem", "{}")),
            Verdict::Forward
        );
        assert_eq!(plan.injected()[&FaultKind::Outage], 1);
        let (all, _) = faults(only(FaultKind::Transient));
        assert_eq!(
            all.before(&call(Service::DynamoDbStreams, "GetRecords", "{}")),
            Verdict::Forward
        );
    }

    #[test]
    fn each_fault_takes_its_own_slice_of_the_roll() {
        let rates = Rates {
            throttle: 0.1,
            transient: 0.2,
            ..only(FaultKind::Crash)
        };
        let rate = |kind| rates.of(kind);
        assert_eq!(slice_of(0.05, rate), Some(FaultKind::Throttle));
        assert_eq!(slice_of(0.25, rate), Some(FaultKind::Transient));
        assert_eq!(slice_of(0.35, rate), None);
    }
}
