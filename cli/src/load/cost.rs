//! What a run's orders used, priced: the AWS requests the functions and their event sources made
//! (counted by the kit's interceptor), the invocations and billed milliseconds the runner
//! measured at each function's memory size, and the HTTP API's requests; per order and per
//! million orders at the list prices of [`prices`](super::prices).

use std::collections::BTreeMap;

use ripple_kit::requests::RequestCounts;
use serde::Serialize;

use super::prices::{self, Price};

/// One function's invocations and the milliseconds they were billed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Invocations {
    /// Invocations.
    pub count: u64,
    /// Billed milliseconds, summed (each invocation rounded up to 1 ms).
    pub billed_ms: u64,
    /// Its `MemorySize`, in MB.
    pub memory_mb: u64,
}

impl Invocations {
    /// GB-seconds: billed seconds × memory in GB (1 GB = 1024 MB, as Lambda counts it).
    pub fn gb_seconds(&self) -> f64 {
        self.billed_ms as f64 / 1000.0 * self.memory_mb as f64 / 1024.0
    }
}

/// What a run used, in the units AWS bills.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Usage {
    /// Per function (logical id).
    pub functions: BTreeMap<String, Invocations>,
    /// The functions' own requests, by service and operation.
    pub requests: RequestCounts,
    /// The same, by function (logical id): what each function's invocations made.
    pub by_function: BTreeMap<String, RequestCounts>,
    /// The event source mappings' SQS requests (receive, delete), made by Lambda's pollers on
    /// AWS and billed to the account.
    pub event_sources: RequestCounts,
    /// Requests the HTTP API received.
    pub http_requests: u64,
}

impl Usage {
    /// Lambda invocations.
    pub fn invocations(&self) -> u64 {
        self.functions.values().map(|f| f.count).sum()
    }

    /// Lambda GB-seconds.
    pub fn gb_seconds(&self) -> f64 {
        self.functions.values().map(Invocations::gb_seconds).sum()
    }

    /// SNS publish requests, in the 64 KiB chunks SNS bills.
    pub fn sns_publishes(&self) -> u64 {
        self.requests
            .services
            .get("SNS")
            .into_iter()
            .flatten()
            .filter(|(op, _)| op.starts_with("Publish"))
            .map(|(_, c)| c.chunks)
            .sum()
    }

    /// Messages SNS accepted (each `PublishBatch` entry counts).
    pub fn sns_messages(&self) -> u64 {
        self.requests.service("SNS").messages
    }

    /// Messages the event source mappings received from their queues: what SNS delivered,
    /// plus redeliveries.
    pub fn sqs_deliveries(&self) -> u64 {
        self.event_sources.service("SQS").messages
    }

    /// SQS requests billed per order, in 64 KiB chunks: the functions' (visibility changes,
    /// quarantine) and the mappings' receives that returned messages and their deletes. Empty
    /// receives are left out: they come from polling idle queues, a cost of time, not of
    /// orders (see [`Usage::empty_receives`]).
    pub fn sqs_requests(&self) -> u64 {
        let polled = self.event_sources.service("SQS");
        self.requests.service("SQS").chunks + polled.chunks.saturating_sub(polled.empty)
    }

    /// Receives that returned nothing.
    pub fn empty_receives(&self) -> u64 {
        self.event_sources.service("SQS").empty
    }
}

/// One priced line: how much of it an order used and what a million orders pay.
#[derive(Debug, Clone, Serialize)]
pub struct CostLine {
    /// What is bought.
    pub item: &'static str,
    /// The unit it is priced in.
    pub unit: &'static str,
    /// Units per order.
    pub per_order: f64,
    /// USD per million units.
    pub usd_per_million_units: f64,
    /// USD per million orders.
    pub usd_per_million_orders: f64,
}

/// A run's cost per order, by line.
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// The orders the cost is spread over (those the API accepted).
    pub orders: u64,
    /// The region of the prices.
    pub region: &'static str,
    /// The day they were taken.
    pub prices_taken_on: &'static str,
    /// Line by line.
    pub lines: Vec<CostLine>,
    /// USD per million orders, every line.
    pub usd_per_million_orders: f64,
}

/// `usage` over `orders` at the list prices.
pub fn cost(usage: &Usage, orders: u64) -> Cost {
    let dynamodb = usage.requests.service("DynamoDB");
    let quantities: [(Price, f64); 8] = [
        (prices::LAMBDA_REQUESTS, usage.invocations() as f64),
        (prices::LAMBDA_ARM_GB_SECOND, usage.gb_seconds()),
        (prices::DYNAMODB_WRITE_UNITS, dynamodb.write_units),
        (prices::DYNAMODB_READ_UNITS, dynamodb.read_units),
        (prices::SNS_PUBLISHES, usage.sns_publishes() as f64),
        (prices::SNS_SQS_DELIVERIES, usage.sqs_deliveries() as f64),
        (prices::SQS_REQUESTS, usage.sqs_requests() as f64),
        (prices::HTTP_API_REQUESTS, usage.http_requests as f64),
    ];
    let per_order = |total: f64| {
        if orders == 0 {
            0.0
        } else {
            total / orders as f64
        }
    };
    let lines: Vec<CostLine> = quantities
        .into_iter()
        .map(|(price, total)| CostLine {
            item: price.item,
            unit: price.unit,
            per_order: per_order(total),
            usd_per_million_units: price.per_unit() * 1e6,
            usd_per_million_orders: per_order(total) * price.per_unit() * 1e6,
        })
        .collect();
    Cost {
        orders,
        region: prices::REGION,
        prices_taken_on: prices::TAKEN_ON,
        usd_per_million_orders: lines.iter().map(|l| l.usd_per_million_orders).sum(),
        lines,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ripple_kit::requests::{Attempt, RequestCounter};

    fn counted(calls: &[(&str, &str, Attempt)]) -> RequestCounts {
        let counter = RequestCounter::new();
        for (service, operation, attempt) in calls {
            counter.record(service, operation, attempt);
        }
        counter.snapshot()
    }

    fn line<'a>(cost: &'a Cost, item: &str) -> &'a CostLine {
        cost.lines.iter().find(|l| l.item == item).unwrap()
    }

    #[test]
    fn gb_seconds_are_billed_seconds_times_memory_in_gib() {
        let f = Invocations {
            count: 4,
            billed_ms: 2000,
            memory_mb: 256,
        };
        assert_eq!(f.gb_seconds(), 0.5);
    }

    #[test]
    fn one_order_of_known_usage_costs_what_the_list_prices_say() {
        let write = Attempt {
            write_units: 4.0,
            ..Attempt::default()
        };
        let read = Attempt {
            read_units: 0.5,
            ..Attempt::default()
        };
        let publish = Attempt {
            messages: 10,
            request_bytes: 70_000,
            ..Attempt::default()
        };
        let usage = Usage {
            functions: BTreeMap::from([(
                "Fn".to_owned(),
                Invocations {
                    count: 10,
                    billed_ms: 4096,
                    memory_mb: 256,
                },
            )]),
            requests: counted(&[
                ("DynamoDB", "TransactWriteItems", write),
                ("DynamoDB", "GetItem", read),
                ("SNS", "PublishBatch", publish),
            ]),
            by_function: BTreeMap::new(),
            event_sources: counted(&[
                (
                    "SQS",
                    "ReceiveMessage",
                    Attempt {
                        messages: 3,
                        ..Attempt::default()
                    },
                ),
                (
                    "SQS",
                    "ReceiveMessage",
                    Attempt {
                        empty: true,
                        ..Attempt::default()
                    },
                ),
                ("SQS", "DeleteMessageBatch", Attempt::default()),
            ]),
            http_requests: 1,
        };
        let cost = cost(&usage, 1);

        // 10 invocations at $0.20/M; 4.096 s × 0.25 GB = 1.024 GB-s at $0.0000133334.
        assert!((line(&cost, "Lambda requests").usd_per_million_orders - 2.0).abs() < 1e-9);
        let duration = line(&cost, "Lambda duration (arm64)");
        assert!((duration.per_order - 1.024).abs() < 1e-12);
        assert!((duration.usd_per_million_orders - 1.024 * 13.3334).abs() < 1e-6);
        assert_eq!(
            line(&cost, "DynamoDB write request units").usd_per_million_orders,
            2.5
        );
        assert_eq!(
            line(&cost, "DynamoDB read request units").usd_per_million_orders,
            0.0625
        );
        // 70 000 bytes are two 64 KiB publish requests.
        assert_eq!(line(&cost, "SNS publishes").per_order, 2.0);
        assert_eq!(line(&cost, "SNS deliveries to SQS").per_order, 3.0);
        // One receive with messages and one delete; the empty receive is not an order's.
        assert_eq!(line(&cost, "SQS requests").per_order, 2.0);
        assert_eq!(usage.empty_receives(), 1);
        assert_eq!(
            line(&cost, "API Gateway HTTP API requests").usd_per_million_orders,
            1.0
        );
        let sum: f64 = cost.lines.iter().map(|l| l.usd_per_million_orders).sum();
        assert!((cost.usd_per_million_orders - sum).abs() < 1e-9);
    }

    #[test]
    fn usage_is_spread_over_the_orders_and_no_orders_cost_nothing() {
        let usage = Usage {
            http_requests: 10,
            ..Usage::default()
        };
        assert_eq!(
            line(&cost(&usage, 10), "API Gateway HTTP API requests").per_order,
            1.0
        );
        assert_eq!(cost(&usage, 0).usd_per_million_orders, 0.0);
    }
}
