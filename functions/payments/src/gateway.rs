//! The payment gateway port, and the deterministic simulated gateway Ripple ships with.
//!
//! A real provider's adapter implements [`PaymentGateway`] and is passed to
//! [`crate::Handler::with_ports`]; nothing else changes. The simulated one decides from the request
//! alone, so a rerun of the same orders (or a redelivery) gets the same answers:
//! - an amount over `PAYMENT_MAX_AMOUNT_CENTS` is declined `amount_over_limit`;
//! - a customer id starting with `declined-` is declined `card_declined`;
//! - a share `PAYMENT_DECLINE_RATE` of orders, picked by a hash of the order id, is declined
//!   `insufficient_funds`;
//! - everything else is captured, with a payment id derived from the order.

use std::future::Future;

use domain::payment::{ChargeRequest, ChargeResult, RefundReceipt, RefundRequest};

/// The gateway could not answer; the call may be retried (with the same idempotency key).
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The provider did not answer or answered with a server error.
    #[error("payment gateway unavailable: {0}")]
    Unavailable(String),
    /// The provider refused the request itself (not a decline): retrying will not help.
    #[error("payment gateway rejected the request: {0}")]
    Rejected(String),
}

/// Where money is taken and given back.
pub trait PaymentGateway: Send + Sync {
    /// Charges `request.amount_cents`; a decline is an `Ok` answer.
    fn charge(
        &self,
        request: ChargeRequest,
    ) -> impl Future<Output = Result<ChargeResult, GatewayError>> + Send;

    /// Gives a captured payment back in full.
    fn refund(
        &self,
        request: RefundRequest,
    ) -> impl Future<Output = Result<RefundReceipt, GatewayError>> + Send;
}

/// A gateway that answers from rules instead of a provider (see the [module docs](self)).
#[derive(Debug, Clone, Default)]
pub struct SimulatedGateway {
    /// Share of orders declined `insufficient_funds`, from 0.0 (none) to 1.0 (all).
    pub decline_rate: f64,
    /// Amounts above this are declined `amount_over_limit`.
    pub max_amount_cents: Option<u64>,
}

/// Customer ids with this prefix always have their card declined.
pub const DECLINED_CUSTOMER_PREFIX: &str = "declined-";

impl SimulatedGateway {
    /// A gateway declining `decline_rate` of orders and amounts over `max_amount_cents`.
    pub fn new(decline_rate: f64, max_amount_cents: Option<u64>) -> Self {
        SimulatedGateway {
            decline_rate,
            max_amount_cents,
        }
    }

    /// The answer to `request`, decided from the request alone.
    pub fn decide(&self, request: &ChargeRequest) -> ChargeResult {
        let declined = |reason: &str| ChargeResult::Declined {
            reason: reason.to_owned(),
        };
        if self
            .max_amount_cents
            .is_some_and(|max| request.amount_cents > max)
        {
            return declined("amount_over_limit");
        }
        if request.customer_id.starts_with(DECLINED_CUSTOMER_PREFIX) {
            return declined("card_declined");
        }
        if unit_interval(&request.order_id) < self.decline_rate {
            return declined("insufficient_funds");
        }
        ChargeResult::Captured {
            payment_id: format!("pay_{:016x}", fnv1a(&request.idempotency_key)),
        }
    }
}

impl PaymentGateway for SimulatedGateway {
    async fn charge(&self, request: ChargeRequest) -> Result<ChargeResult, GatewayError> {
        Ok(self.decide(&request))
    }

    async fn refund(&self, request: RefundRequest) -> Result<RefundReceipt, GatewayError> {
        Ok(RefundReceipt {
            refund_id: format!("re_{:016x}", fnv1a(&request.idempotency_key)),
        })
    }
}

/// 64-bit FNV-1a: a hash whose value is fixed by its definition, unlike `std`'s hasher, so the
/// same order is declined on every machine and in every release.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A number in `[0, 1)` fixed by `text`.
fn unit_interval(text: &str) -> f64 {
    // FNV alone leaves ids that differ in their last characters close together in the high
    // bits; the murmur3 finaliser spreads them. The top 53 bits fit an f64 exactly.
    (mix(fnv1a(text)) >> 11) as f64 / (1_u64 << 53) as f64
}

/// The 64-bit finaliser of MurmurHash3: every input bit affects every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(order_id: &str, customer_id: &str, amount_cents: u64) -> ChargeRequest {
        ChargeRequest {
            order_id: order_id.into(),
            customer_id: customer_id.into(),
            amount_cents,
            currency: "EUR".into(),
            idempotency_key: format!("charge-{order_id}"),
        }
    }

    fn reason(result: ChargeResult) -> Option<String> {
        match result {
            ChargeResult::Declined { reason } => Some(reason),
            ChargeResult::Captured { .. } => None,
        }
    }

    #[test]
    fn each_rule_declines_with_its_reason() {
        let gateway = SimulatedGateway::new(0.0, Some(10_000));
        assert_eq!(
            reason(gateway.decide(&request("o", "c-1", 10_001))).as_deref(),
            Some("amount_over_limit")
        );
        assert_eq!(
            reason(gateway.decide(&request("o", "declined-7", 1))).as_deref(),
            Some("card_declined")
        );
        assert_eq!(reason(gateway.decide(&request("o", "c-1", 10_000))), None);
        let always = SimulatedGateway::new(1.0, None);
        assert_eq!(
            reason(always.decide(&request("o", "c-1", 1))).as_deref(),
            Some("insufficient_funds")
        );
    }

    #[test]
    fn the_decline_rate_is_deterministic_per_order_and_roughly_right() {
        let gateway = SimulatedGateway::new(0.3, None);
        let declined = (0..10_000)
            .filter(|i| reason(gateway.decide(&request(&format!("o-{i}"), "c", 1))).is_some())
            .count();
        assert!(
            (2_700..3_300).contains(&declined),
            "{declined} of 10000 declined"
        );
        for i in 0..100 {
            let r = request(&format!("o-{i}"), "c", 1);
            assert_eq!(gateway.decide(&r), gateway.decide(&r));
        }
    }

    #[test]
    fn payment_ids_are_stable_per_order() {
        let gateway = SimulatedGateway::default();
        assert_eq!(
            gateway.decide(&request("o-1", "c", 1)),
            gateway.decide(&request("o-1", "c", 1))
        );
        assert_ne!(
            gateway.decide(&request("o-1", "c", 1)),
            gateway.decide(&request("o-2", "c", 1))
        );
        assert_eq!(fnv1a(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a("a"), 0xaf63_dc4c_8601_ec8c);
    }
}
