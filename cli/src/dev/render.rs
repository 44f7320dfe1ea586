//! The summary written out: a report for people, or one JSON object for scripts.

use std::fmt::Write as _;

use serde_json::json;

use super::summary::Summary;

/// The summary for people: the totals, then a table per function, queue and sku, then the
/// stored events by type.
pub fn render(summary: &Summary) -> String {
    let mut out = String::new();
    for section in [headline, totals, functions, queues, stock, events] {
        section(&mut out, summary);
    }
    out
}

/// The stack, the order count and how long the pipeline took to go quiet.
fn headline(out: &mut String, summary: &Summary) {
    let secs = |ms: u64| ms as f64 / 1000.0;
    let waited = if summary.quiet {
        "pipeline quiet after"
    } else {
        "pipeline STILL BUSY after"
    };
    let _ = writeln!(
        out,
        "ripple dev: stack {}  ({} orders, {waited} {:.1} s, {:.1} s in all)",
        summary.stack,
        summary.orders_sent,
        secs(summary.elapsed_ms),
        secs(summary.total_ms)
    );
    let _ = writeln!(out);
}

/// One line per stage: orders, outcomes, stock, events, failures (and the API's URL).
fn totals(out: &mut String, summary: &Summary) {
    let refused = if summary.orders_refused.is_empty() {
        String::new()
    } else {
        let parts: Vec<String> = summary
            .orders_refused
            .iter()
            .map(|(status, n)| {
                format!(
                    "{n} × {}",
                    if *status == 0 {
                        "no response".to_owned()
                    } else {
                        status.to_string()
                    }
                )
            })
            .collect();
        format!(", refused {}", parts.join(", "))
    };
    let _ = writeln!(out, "orders   placed {}{refused}", summary.orders_placed);
    let o = &summary.outcomes;
    let _ = writeln!(
        out,
        "outcome  {} confirmed, {} cancelled out of stock, {} cancelled payment declined, {} cancelled by the customer, {} timed out, {} pending",
        o.confirmed,
        o.cancelled_out_of_stock,
        o.cancelled_payment_declined,
        o.cancelled_customer_request,
        o.cancelled_timed_out,
        o.pending
    );
    let _ = writeln!(
        out,
        "stock    reserved for {} order(s), rejected for {}; {}",
        summary.stock_reserved,
        summary.stock_rejected,
        if summary.stock_conserved {
            "conserved (seeded = available + on confirmed orders, for every sku)"
        } else {
            "NOT CONSERVED, see the table below"
        }
    );
    let _ = writeln!(
        out,
        "events   {} stored, {} published, {} queue messages consumed ({} failed receives), {} invocation errors",
        summary.events_stored,
        summary.events_published,
        summary.messages_consumed,
        summary.messages_failed,
        summary.invocation_errors
    );
    let _ = writeln!(
        out,
        "failures {} in dead-letter queues, {} stream batch(es) given up",
        summary.dlq_messages, summary.failure_records
    );
    let p = &summary.latency.placed_to_terminal;
    if p.count > 0 {
        let _ = writeln!(
            out,
            "latency  placed to confirmed or cancelled: p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms ({} orders; per step in --json)",
            p.p50, p.p95, p.p99, p.max, p.count
        );
    }
    let _ = writeln!(out, "{}", crate::load::cost_line(summary));
    if let Some(url) = &summary.http_url {
        let _ = writeln!(out, "api      {url}");
    }
}

/// Per function: what it was given and how that went.
fn functions(out: &mut String, summary: &Summary) {
    let _ = writeln!(
        out,
        "\n{:<26} {:>11} {:>6} {:>8} {:>6} {:>6} {:>8}  trigger",
        "function", "invocations", "errors", "received", "ok", "failed", "filtered"
    );
    for (id, f) in &summary.functions {
        let s = &f.stats;
        // What the function was given: HTTP requests, stream records or queue messages.
        let (received, ok, failed, filtered) = if s.stream_received > 0 {
            (
                s.stream_received,
                s.stream_succeeded,
                s.stream_discarded,
                s.stream_filtered,
            )
        } else if s.sqs_received > 0 {
            (
                s.sqs_received,
                s.sqs_succeeded,
                s.sqs_failed,
                s.sqs_filtered,
            )
        } else {
            (s.http_requests, s.invocations - s.errors, s.errors, 0)
        };
        let _ = writeln!(
            out,
            "{id:<26} {:>11} {:>6} {received:>8} {ok:>6} {failed:>6} {filtered:>8}  {}",
            s.invocations,
            s.errors,
            f.triggers.join(", ")
        );
    }
}

/// Per queue: messages left and what the queue is for.
fn queues(out: &mut String, summary: &Summary) {
    // As wide as the longest name (FIFO names end in .fifo), at least the header's.
    let width = summary
        .queues
        .keys()
        .map(String::len)
        .max()
        .unwrap_or(0)
        .max(45);
    let _ = writeln!(out, "\n{:<width$} messages  role", "queue");
    for (name, q) in &summary.queues {
        let _ = writeln!(out, "{name:<width$} {:>8}  {}", q.messages, q.role);
    }
}

/// Per sku: seeded, available, allocated and confirmed units.
fn stock(out: &mut String, summary: &Summary) {
    let _ = writeln!(
        out,
        "\n{:<12} {:>7} {:>10} {:>10} {:>10}",
        "sku", "seeded", "available", "allocated", "confirmed"
    );
    for level in &summary.stock {
        let _ = writeln!(
            out,
            "{:<12} {:>7} {:>10} {:>10} {:>10}{}",
            level.sku,
            level.seeded,
            level.available,
            level.allocated,
            level.confirmed_units,
            if level.conserved() {
                ""
            } else {
                "  <- not conserved"
            }
        );
    }
}

/// Stored events by type.
fn events(out: &mut String, summary: &Summary) {
    let _ = writeln!(out, "\nevents stored by type");
    for (event_type, n) in &summary.events_by_type {
        let _ = writeln!(out, "  {event_type:<28} {n:>6}");
    }
}

/// The figures as one JSON object.
pub fn render_json(summary: &Summary) -> String {
    serde_json::to_string(summary).unwrap_or_else(|e| json!({"error": e.to_string()}).to_string())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::dev::summary::{OrderOutcomes, StockLevel};

    #[test]
    fn the_json_summary_has_the_agreed_fields() {
        let summary = Summary {
            stack: "s".into(),
            orders_sent: 2,
            orders_placed: 2,
            orders_refused: BTreeMap::new(),
            events_stored: 5,
            events_by_type: BTreeMap::new(),
            events_published: 5,
            messages_consumed: 3,
            messages_failed: 0,
            dlq_messages: 0,
            failure_records: 0,
            stock_reserved: 1,
            stock_rejected: 1,
            invocation_errors: 0,
            latency: Default::default(),
            outcomes: OrderOutcomes {
                confirmed: 1,
                cancelled_out_of_stock: 1,
                ..OrderOutcomes::default()
            },
            stock: vec![StockLevel {
                sku: "A".into(),
                seeded: 5,
                available: 4,
                allocated: 1,
                confirmed_units: 1,
            }],
            stock_conserved: true,
            quiet: true,
            elapsed_ms: 10,
            placing_ms: 5,
            total_ms: 20,
            functions: BTreeMap::new(),
            queues: BTreeMap::new(),
            http_url: None,
            usage: Default::default(),
            cost: crate::load::cost::cost(&Default::default(), 0),
        };
        let value: serde_json::Value = serde_json::from_str(&render_json(&summary)).unwrap();
        for field in [
            "orders_placed",
            "events_stored",
            "events_published",
            "messages_consumed",
            "dlq_messages",
            "elapsed_ms",
            "confirmed",
            "cancelled_out_of_stock",
            "cancelled_payment_declined",
        ] {
            assert!(value[field].is_u64(), "{field}");
        }
        assert_eq!(value["stock_conserved"], true);
        assert!(value["latency"]["placed_to_terminal"]["p95"].is_number());
        assert!(render(&summary).contains("placed 2"));
        assert!(render(&summary).contains("1 confirmed, 1 cancelled out of stock"));
    }
}
