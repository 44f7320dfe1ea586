//! The price table: AWS's published on-demand list prices for what an order uses, in one place.
//!
//! Region us-east-1 (N. Virginia), prices in USD, taken on 2026-12-01 from AWS's public
//! pricing pages (aws.amazon.com/lambda/pricing, /dynamodb/pricing/on-demand, /sns/pricing,
//! /sqs/pricing, /api-gateway/pricing) as restated by the pages checked that day; each entry
//! says what confirmed it. First tier of each tiered price, no free tier, no savings plan: the
//! cost of the millionth order of a month past the free tiers, not a bill.
//!
//! Not priced, because the local runner cannot count them: KMS requests the services make for
//! the customer-managed key (table, topic, queues; $0.03 per 10 000 requests), CloudWatch Logs
//! ingestion of the functions' JSON logs and EMF metrics, X-Ray traces, storage, and data
//! transfer (free within the region).

/// The region the prices are for.
pub const REGION: &str = "us-east-1";

/// The day the prices were taken.
pub const TAKEN_ON: &str = "2026-12-01";

/// One list price: `usd` per `per` units of `unit`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// What is bought.
    pub item: &'static str,
    /// US dollars …
    pub usd: f64,
    /// … per this many units …
    pub per: f64,
    /// … of this unit.
    pub unit: &'static str,
    /// Where it comes from, and how sure it is.
    pub source: &'static str,
}

impl Price {
    /// The price of one unit.
    pub fn per_unit(&self) -> f64 {
        self.usd / self.per
    }
}

/// Lambda requests (an invocation, whatever triggers it).
pub const LAMBDA_REQUESTS: Price = Price {
    item: "Lambda requests",
    usd: 0.20,
    per: 1e6,
    unit: "invocation",
    source: "Lambda pricing: $0.20 per 1M requests, x86 and Arm alike (confirmed by several pages)",
};

/// Lambda duration on arm64 (`Architectures: [arm64]` in the template), first tier.
pub const LAMBDA_ARM_GB_SECOND: Price = Price {
    item: "Lambda duration (arm64)",
    usd: 0.000_013_333_4,
    per: 1.0,
    unit: "GB-second",
    source: "Lambda pricing, Arm: $0.0000133334 per GB-s for the first 7.5 billion GB-s a month (confirmed by several pages)",
};

/// DynamoDB on-demand write request units, Standard table class.
pub const DYNAMODB_WRITE_UNITS: Price = Price {
    item: "DynamoDB write request units",
    usd: 0.625,
    per: 1e6,
    unit: "WRU",
    source: "DynamoDB on-demand pricing since the 50 % cut of 2024-11-01: $0.625 per million WRU (confirmed by several pages)",
};

/// DynamoDB on-demand read request units, Standard table class.
pub const DYNAMODB_READ_UNITS: Price = Price {
    item: "DynamoDB read request units",
    usd: 0.125,
    per: 1e6,
    unit: "RRU",
    source: "DynamoDB on-demand pricing since 2024-11-01: $0.125 per million RRU (confirmed by several pages)",
};

/// SNS standard topic publishes, per 64 KiB chunk of a request.
pub const SNS_PUBLISHES: Price = Price {
    item: "SNS publishes",
    usd: 0.50,
    per: 1e6,
    unit: "64 KiB publish request",
    source: "SNS pricing, standard topics: $0.50 per 1M requests, each 64 KB chunk one request (confirmed by two pages)",
};

/// SNS deliveries to SQS queues.
pub const SNS_SQS_DELIVERIES: Price = Price {
    item: "SNS deliveries to SQS",
    usd: 0.0,
    per: 1e6,
    unit: "delivery",
    source: "SNS pricing lists deliveries to SQS at no charge; NOT confirmed by the pages checked (they list only the HTTP, email, SMS and push rates)",
};

/// SQS standard queue requests, per 64 KiB chunk, first tier.
pub const SQS_REQUESTS: Price = Price {
    item: "SQS requests",
    usd: 0.40,
    per: 1e6,
    unit: "64 KiB request",
    source: "SQS pricing, standard queues: $0.40 per 1M requests for the first 100 billion a month, each 64 KB chunk one request (confirmed by several pages)",
};

/// API Gateway HTTP API requests, first tier.
pub const HTTP_API_REQUESTS: Price = Price {
    item: "API Gateway HTTP API requests",
    usd: 1.00,
    per: 1e6,
    unit: "request (512 KB)",
    source: "API Gateway pricing, HTTP APIs: $1.00 per million for the first 300 million a month, metered in 512 KB increments (confirmed by several pages)",
};

/// Every price, in the order a cost is reported.
pub const ALL: [Price; 8] = [
    LAMBDA_REQUESTS,
    LAMBDA_ARM_GB_SECOND,
    DYNAMODB_WRITE_UNITS,
    DYNAMODB_READ_UNITS,
    SNS_PUBLISHES,
    SNS_SQS_DELIVERIES,
    SQS_REQUESTS,
    HTTP_API_REQUESTS,
];
