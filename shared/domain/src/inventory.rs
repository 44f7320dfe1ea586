//! Inventory: the `Stock` of each sku and the `Reservation` held for each order.
//!
//! Stock levels are event-sourced per sku (`stock.restocked`, `stock.allocated`,
//! `stock.deallocated`), so two orders racing for the last unit collide on the same stream
//! position and only one wins. What inventory decided for an order lives in the order's
//! `Reservation` stream (`stock.reserved`, `stock.rejected`, `stock.released`): one event per order
//! outcome, which is what payments and the saga listen to.

use std::collections::BTreeMap;

use ripple_kit::store::Snapshotted;
use ripple_kit::{Aggregate, Loaded};
use serde::{Deserialize, Serialize};

use crate::order::OrderPlaced;

/// Events of the `Stock` aggregate (one stream per sku).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum StockEvent {
    /// Units arrived.
    #[serde(rename = "stock.restocked")]
    Restocked {
        /// The sku.
        sku: String,
        /// Units added.
        quantity: u64,
    },
    /// Units were set aside for an order.
    #[serde(rename = "stock.allocated")]
    Allocated {
        /// The sku.
        sku: String,
        /// The order.
        order_id: String,
        /// Units taken.
        quantity: u64,
    },
    /// Units set aside for an order were given back.
    #[serde(rename = "stock.deallocated")]
    Deallocated {
        /// The sku.
        sku: String,
        /// The order.
        order_id: String,
        /// Units given back.
        quantity: u64,
    },
}

/// One sku's stock, folded from its stream. Its stream grows with every order of the sku, so it
/// is loaded through a snapshot ([`Snapshotted`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stock {
    /// Units free to allocate; never negative.
    pub available: u64,
    /// Units allocated to orders and not given back.
    pub allocated: u64,
}

impl Aggregate for Stock {
    const TYPE: &'static str = "Stock";
    type Event = StockEvent;

    fn apply(&mut self, event: &StockEvent) {
        match event {
            StockEvent::Restocked { quantity, .. } => self.available += quantity,
            StockEvent::Allocated { quantity, .. } => {
                self.available = self.available.saturating_sub(*quantity);
                self.allocated += quantity;
            }
            StockEvent::Deallocated { quantity, .. } => {
                self.available += quantity;
                self.allocated = self.allocated.saturating_sub(*quantity);
            }
        }
    }
}

impl Snapshotted for Stock {
    const SCHEMA: u32 = 1;
}

/// A sku and a number of units.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
pub struct SkuQuantity {
    /// The sku.
    pub sku: String,
    /// Units.
    pub quantity: u64,
}

/// A line inventory could not fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
pub struct Shortage {
    /// The sku.
    pub sku: String,
    /// Units the order asked for.
    pub requested: u64,
    /// Units that were free.
    pub available: u64,
}

/// `stock.reserved`: every line of the order is set aside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
pub struct StockReserved {
    /// The order.
    pub order_id: String,
    /// Who ordered (payments charges them).
    pub customer_id: String,
    /// Amount to charge.
    pub total_cents: u64,
    /// ISO 4217 code.
    pub currency: String,
    /// What was set aside.
    pub lines: Vec<SkuQuantity>,
}

/// Events of the `Reservation` aggregate (one stream per order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schemas", derive(schemars::JsonSchema))]
#[serde(tag = "type", content = "data")]
pub enum ReservationEvent {
    /// Every line is set aside.
    #[serde(rename = "stock.reserved")]
    Reserved(StockReserved),
    /// At least one line could not be filled; nothing is set aside.
    #[serde(rename = "stock.rejected")]
    Rejected {
        /// The order.
        order_id: String,
        /// What was missing.
        shortages: Vec<Shortage>,
    },
    /// What was set aside went back to stock (the order was cancelled).
    #[serde(rename = "stock.released")]
    Released {
        /// The order.
        order_id: String,
        /// What went back.
        lines: Vec<SkuQuantity>,
    },
}

/// What inventory holds for one order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Reservation {
    /// Nothing decided yet.
    #[default]
    None,
    /// These units are set aside.
    Reserved(Vec<SkuQuantity>),
    /// Nothing was set aside.
    Rejected,
    /// What was set aside went back.
    Released,
}

impl Aggregate for Reservation {
    const TYPE: &'static str = "Reservation";
    type Event = ReservationEvent;

    fn apply(&mut self, event: &ReservationEvent) {
        *self = match event {
            ReservationEvent::Reserved(r) => Reservation::Reserved(r.lines.clone()),
            ReservationEvent::Rejected { .. } => Reservation::Rejected,
            ReservationEvent::Released { .. } => Reservation::Released,
        };
    }
}

/// An event to append to one sku's stream at `sequence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockChange {
    /// The sku's stream.
    pub sku: String,
    /// The position it takes.
    pub sequence: u64,
    /// The event.
    pub event: StockEvent,
}

/// What inventory decides for an order: the reservation event and the stock changes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The order-level outcome, appended to the order's reservation stream.
    pub outcome: ReservationEvent,
    /// Per-sku changes, appended in the same transaction.
    pub changes: Vec<StockChange>,
}

/// The stock of each sku a decision touches, as loaded; a sku missing from it has no stock.
pub type Stocks = BTreeMap<String, Loaded<Stock>>;

/// The position the next event of `sku`'s stream takes.
fn next_sequence(stocks: &Stocks, sku: &str) -> u64 {
    stocks.get(sku).map_or(1, |stock| stock.version + 1)
}

/// Reserves every line of `order` or none, from the current stock of each sku.
pub fn decide_reservation(order: &OrderPlaced, stocks: &Stocks) -> Decision {
    let shortages: Vec<Shortage> = order
        .lines
        .iter()
        .filter_map(|line| {
            let available = stocks.get(&line.sku).map_or(0, |s| s.state.available);
            let requested = u64::from(line.quantity);
            (available < requested).then(|| Shortage {
                sku: line.sku.clone(),
                requested,
                available,
            })
        })
        .collect();
    if !shortages.is_empty() {
        return Decision {
            outcome: ReservationEvent::Rejected {
                order_id: order.order_id.clone(),
                shortages,
            },
            changes: Vec::new(),
        };
    }
    let lines: Vec<SkuQuantity> = order
        .lines
        .iter()
        .map(|l| SkuQuantity {
            sku: l.sku.clone(),
            quantity: u64::from(l.quantity),
        })
        .collect();
    let changes = lines
        .iter()
        .map(|l| StockChange {
            sku: l.sku.clone(),
            sequence: next_sequence(stocks, &l.sku),
            event: StockEvent::Allocated {
                sku: l.sku.clone(),
                order_id: order.order_id.clone(),
                quantity: l.quantity,
            },
        })
        .collect();
    Decision {
        outcome: ReservationEvent::Reserved(StockReserved {
            order_id: order.order_id.clone(),
            customer_id: order.customer_id.clone(),
            total_cents: order.total.minor_units,
            currency: order.total.currency.clone(),
            lines,
        }),
        changes,
    }
}

/// Gives back what `reservation` holds for `order_id`; `None` when it was rejected or already
/// released, so nothing is released twice or out of thin air.
///
/// An order cancelled before inventory has decided (the cancel overtook `order.placed` on the
/// queue) gets a `stock.released` of no lines: it takes the reservation's first position, so the
/// late `order.placed` finds the order decided and reserves nothing, and a reservation racing it
/// collides on that position and reloads. Without it the late reservation would hold the stock
/// of a cancelled order for ever.
pub fn decide_release(
    order_id: &str,
    reservation: &Reservation,
    stocks: &Stocks,
) -> Option<Decision> {
    let lines: &[SkuQuantity] = match reservation {
        Reservation::Reserved(lines) => lines,
        Reservation::None => &[],
        Reservation::Rejected | Reservation::Released => return None,
    };
    let changes = lines
        .iter()
        .map(|l| StockChange {
            sku: l.sku.clone(),
            sequence: next_sequence(stocks, &l.sku),
            event: StockEvent::Deallocated {
                sku: l.sku.clone(),
                order_id: order_id.to_owned(),
                quantity: l.quantity,
            },
        })
        .collect();
    Some(Decision {
        outcome: ReservationEvent::Released {
            order_id: order_id.to_owned(),
            lines: lines.to_vec(),
        },
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::OrderLine;

    fn order(lines: &[(&str, u32)]) -> OrderPlaced {
        OrderPlaced {
            order_id: "o-1".into(),
            customer_id: "c-1".into(),
            lines: lines
                .iter()
                .map(|(sku, q)| OrderLine {
                    sku: (*sku).into(),
                    quantity: *q,
                    unit_price_cents: 100,
                })
                .collect(),
            total: crate::money::Money::new("EUR", 100),
        }
    }

    fn stocks(levels: &[(&str, u64)]) -> Stocks {
        levels
            .iter()
            .map(|(sku, q)| {
                let history = [StockEvent::Restocked {
                    sku: (*sku).into(),
                    quantity: *q,
                }];
                ((*sku).to_owned(), Loaded::fold(sku, &history))
            })
            .collect()
    }

    #[test]
    fn given_enough_stock_when_reserving_then_every_line_is_allocated_at_the_next_version() {
        let d = decide_reservation(
            &order(&[("A", 2), ("B", 1)]),
            &stocks(&[("A", 2), ("B", 5)]),
        );
        assert!(matches!(d.outcome, ReservationEvent::Reserved(ref r) if r.lines.len() == 2));
        assert_eq!(d.changes.len(), 2);
        assert!(d.changes.iter().all(|c| c.sequence == 2));
    }

    #[test]
    fn given_one_short_line_when_reserving_then_nothing_is_allocated() {
        let d = decide_reservation(
            &order(&[("A", 2), ("B", 6)]),
            &stocks(&[("A", 2), ("B", 5)]),
        );
        assert_eq!(
            d.outcome,
            ReservationEvent::Rejected {
                order_id: "o-1".into(),
                shortages: vec![Shortage {
                    sku: "B".into(),
                    requested: 6,
                    available: 5
                }],
            }
        );
        assert!(d.changes.is_empty());
    }

    #[test]
    fn an_unknown_sku_has_no_stock() {
        let d = decide_reservation(&order(&[("Z", 1)]), &Stocks::new());
        assert!(matches!(d.outcome, ReservationEvent::Rejected { .. }));
    }

    #[test]
    fn stock_never_goes_negative_and_releases_restore_it() {
        let mut s = Loaded::<Stock>::fold(
            "A",
            &[StockEvent::Restocked {
                sku: "A".into(),
                quantity: 3,
            }],
        );
        s.apply(&StockEvent::Allocated {
            sku: "A".into(),
            order_id: "o".into(),
            quantity: 3,
        });
        assert_eq!((s.state.available, s.state.allocated), (0, 3));
        s.apply(&StockEvent::Deallocated {
            sku: "A".into(),
            order_id: "o".into(),
            quantity: 3,
        });
        assert_eq!((s.state.available, s.state.allocated, s.version), (3, 0, 3));
    }

    #[test]
    fn only_a_held_reservation_is_released() {
        let levels = stocks(&[("A", 1)]);
        assert!(decide_release("o", &Reservation::Rejected, &levels).is_none());
        assert!(decide_release("o", &Reservation::Released, &levels).is_none());
        let held = Reservation::Reserved(vec![SkuQuantity {
            sku: "A".into(),
            quantity: 1,
        }]);
        let d = decide_release("o", &held, &levels).unwrap();
        assert_eq!(d.changes[0].sequence, 2);
        assert!(matches!(d.outcome, ReservationEvent::Released { .. }));
    }

    #[test]
    fn a_cancel_before_any_decision_closes_the_reservation_empty() {
        let levels = stocks(&[("A", 1)]);
        let d = decide_release("o", &Reservation::None, &levels).unwrap();
        assert!(d.changes.is_empty());
        let ReservationEvent::Released { order_id, lines } = &d.outcome else {
            panic!("expected a release, got {:?}", d.outcome);
        };
        assert_eq!((order_id.as_str(), lines.len()), ("o", 0));
        let reservation = Loaded::<Reservation>::fold("o", [&d.outcome]);
        assert_eq!(
            (reservation.state, reservation.version),
            (Reservation::Released, 1)
        );
    }

    #[test]
    fn reservation_history_folds_to_the_latest_state() {
        let reserved = decide_reservation(&order(&[("A", 1)]), &stocks(&[("A", 1)])).outcome;
        let released = ReservationEvent::Released {
            order_id: "o-1".into(),
            lines: vec![],
        };
        assert_eq!(Loaded::<Reservation>::fold("o-1", [&reserved]).version, 1);
        let both = Loaded::<Reservation>::fold("o-1", [&reserved, &released]);
        assert_eq!((both.state, both.version), (Reservation::Released, 2));
    }
}
