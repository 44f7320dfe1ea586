//! The load report written out: tables for people, or one JSON object for scripts; and the
//! short cost line `ripple dev` prints.

use std::fmt::Write as _;

use ripple_kit::requests::RequestCounts;
use serde_json::json;

use super::cost::{Cost, Usage};
use super::{Invariant, LoadReport};
use crate::dev::{Latency, OrderOutcomes, Summary};

/// The report for people.
pub fn render(report: &LoadReport) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let _ = writeln!(
        out,
        "ripple load: stack {}  ({} orders at {:.1}/s asked, {:.1}/s placed; pipeline {} after {:.1} s)\n",
        s.stack,
        s.orders_sent,
        report.rate,
        report.placed_per_second,
        if s.quiet { "quiet" } else { "STILL BUSY" },
        s.elapsed_ms as f64 / 1000.0
    );
    outcomes(&mut out, s);
    latency_table(&mut out, &s.latency);
    invariant_lines(&mut out, &report.invariants);
    requests(&mut out, &s.usage, s.orders_placed);
    cost_table(&mut out, &s.cost);
    out
}

fn outcomes(out: &mut String, s: &Summary) {
    outcomes_line(out, &s.outcomes);
    let refused: u64 = s.orders_refused.values().sum();
    let _ = writeln!(
        out,
        "errors     {refused} orders refused, {} invocation errors, {} failed receives, {} dead-lettered\n",
        s.invocation_errors, s.messages_failed, s.dlq_messages
    );
}

/// Where the orders ended up, on one line.
pub(super) fn outcomes_line(out: &mut String, o: &OrderOutcomes) {
    let _ = writeln!(
        out,
        "outcomes   {} confirmed, {} out of stock, {} payment declined, {} cancelled by the customer, {} timed out, {} pending",
        o.confirmed,
        o.cancelled_out_of_stock,
        o.cancelled_payment_declined,
        o.cancelled_customer_request,
        o.cancelled_timed_out,
        o.pending
    );
}

/// Placed to terminal and each saga step: p50, p95, p99 and max.
pub(super) fn latency_table(out: &mut String, latency: &Latency) {
    let _ = writeln!(
        out,
        "{:<44} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "latency (ms)", "orders", "p50", "p95", "p99", "max"
    );
    let row = |out: &mut String, name: &str, p: &crate::dev::Percentiles| {
        let _ = writeln!(
            out,
            "{name:<44} {:>6} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
            p.count, p.p50, p.p95, p.p99, p.max
        );
    };
    row(
        out,
        "placed → confirmed or cancelled",
        &latency.placed_to_terminal,
    );
    for (step, p) in &latency.steps {
        row(out, &format!("  {step}"), p);
    }
    let _ = writeln!(out);
}

/// Each invariant, marked.
pub(super) fn invariant_lines(out: &mut String, invariants: &[Invariant]) {
    let _ = writeln!(out, "invariants");
    for i in invariants {
        let mark = if i.holds { "ok  " } else { "FAIL" };
        let _ = writeln!(out, "  {mark} {:<42} {}", i.name, i.detail);
    }
    let _ = writeln!(out);
}

/// Per service and operation: requests, errors, bytes and capacity units, per order.
fn requests(out: &mut String, usage: &Usage, orders: u64) {
    let per = |n: f64| if orders == 0 { 0.0 } else { n / orders as f64 };
    let _ = writeln!(
        out,
        "{:<40} {:>9} {:>7} {:>10} {:>10} {:>7} {:>7}",
        "AWS requests per order", "requests", "errors", "bytes out", "bytes in", "RRU", "WRU"
    );
    let rows = |out: &mut String, who: &str, counts: &RequestCounts| {
        for (service, operations) in &counts.services {
            for (operation, c) in operations {
                let _ = writeln!(
                    out,
                    "{:<40} {:>9.2} {:>7.2} {:>10.0} {:>10.0} {:>7.2} {:>7.2}",
                    format!("{who}{service} {operation}"),
                    per(c.requests as f64),
                    per(c.errors as f64),
                    per(c.request_bytes as f64),
                    per(c.response_bytes as f64),
                    per(c.read_units),
                    per(c.write_units)
                );
            }
        }
    };
    rows(out, "", &usage.requests);
    rows(out, "(event sources) ", &usage.event_sources);
    let t = usage.requests.total();
    let _ = writeln!(
        out,
        "{:<40} {:>9.2} {:>7.2} {:>10.0} {:>10.0} {:>7.2} {:>7.2}",
        "functions' total (event sources apart)",
        per(t.requests as f64),
        per(t.errors as f64),
        per(t.request_bytes as f64),
        per(t.response_bytes as f64),
        per(t.read_units),
        per(t.write_units)
    );
    by_function(out, usage, orders);
    let _ = writeln!(
        out,
        "Lambda: {:.2} invocations and {:.4} GB-s per order; HTTP API: {:.2} requests per order; {} empty receives by the pollers (idle polling, not an order's)\n",
        per(usage.invocations() as f64),
        per(usage.gb_seconds()),
        per(usage.http_requests as f64),
        usage.empty_receives()
    );
}

/// Each function's DynamoDB requests per order, with the operations that make them up and the
/// bytes and read units they brought back (what grows if a function reads more history).
fn by_function(out: &mut String, usage: &Usage, orders: u64) {
    let per = |n: f64| if orders == 0 { 0.0 } else { n / orders as f64 };
    let counted: Vec<_> = usage
        .by_function
        .iter()
        .filter(|(_, counts)| counts.service("DynamoDB").requests > 0)
        .collect();
    if counted.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "{:<20} {:>9} {:>10} {:>7} {:>7}  by operation",
        "DynamoDB per order", "requests", "bytes in", "RRU", "WRU"
    );
    for (function, counts) in counted {
        let d = counts.service("DynamoDB");
        let operations: Vec<String> = counts
            .services
            .get("DynamoDB")
            .into_iter()
            .flatten()
            .map(|(operation, c)| format!("{operation} {:.2}", per(c.requests as f64)))
            .collect();
        let _ = writeln!(
            out,
            "{function:<20} {:>9.2} {:>10.0} {:>7.2} {:>7.2}  {}",
            per(d.requests as f64),
            per(d.response_bytes as f64),
            per(d.read_units),
            per(d.write_units),
            operations.join(", ")
        );
    }
}

fn cost_table(out: &mut String, cost: &Cost) {
    let _ = writeln!(
        out,
        "{:<32} {:>12} {:<24} {:>12} {:>14}",
        "cost", "per order", "unit", "$ per M units", "$ per M orders"
    );
    for line in &cost.lines {
        let _ = writeln!(
            out,
            "{:<32} {:>12.4} {:<24} {:>12.4} {:>14.2}",
            line.item,
            line.per_order,
            line.unit,
            line.usd_per_million_units,
            line.usd_per_million_orders
        );
    }
    let _ = writeln!(
        out,
        "{:<32} {:>65.2}\n(on-demand list prices, {}, taken {}; first tiers, no free tier; KMS, CloudWatch Logs and X-Ray not counted: cli/src/load/prices.rs)",
        "total per million orders", cost.usd_per_million_orders, cost.region, cost.prices_taken_on
    );
}

/// `ripple dev`'s short form: AWS requests per order by service and the cost per million orders.
pub fn cost_line(summary: &Summary) -> String {
    let orders = summary.orders_placed;
    if orders == 0 {
        return "cost     no order placed, nothing to price".to_owned();
    }
    let usage = &summary.usage;
    let polled = usage.event_sources.service("SQS");
    let polled = polled.requests.saturating_sub(polled.empty);
    let mut services: std::collections::BTreeMap<&str, u64> = usage
        .requests
        .services
        .keys()
        .map(|service| (service.as_str(), usage.requests.service(service).requests))
        .collect();
    *services.entry("SQS").or_default() += polled;
    let all: u64 = services.values().sum();
    let by_service: Vec<String> = services
        .iter()
        .map(|(service, n)| format!("{service} {:.1}", *n as f64 / orders as f64))
        .collect();
    format!(
        "cost     {:.1} AWS requests per order ({}; SQS with the pollers' receives that got messages and their deletes), {:.2} invocations; ${:.2} per million orders at {} list prices of {} (ripple load prints the table)",
        all as f64 / orders as f64,
        by_service.join(", "),
        usage.invocations() as f64 / orders as f64,
        summary.cost.usd_per_million_orders,
        summary.cost.region,
        summary.cost.prices_taken_on
    )
}

/// The report as one JSON object.
pub fn render_json(report: &LoadReport) -> String {
    serde_json::to_string(report).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string())
}
