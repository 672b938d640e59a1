//! The order workflow as plain data: the statuses, which moves each kind of caller may make,
//! and what each move does to the held coins and the stock. No database and no HTTP here:
//! [`super::transition_in`] loads the order, asks [`plan`] and persists the answer.
//!
//! ```text
//! pending -> confirmed -> processing -> shipped -> delivered -> refunded
//!    \___________\____________\
//!                              `-> cancelled        (the owner: only from pending or confirmed)
//! ```
//!
//! Money: placing an order holds its total (available -> frozen). `cancelled` releases the
//! hold (frozen -> available) and returns the stock, `delivered` captures it (frozen ->
//! spent), `refunded` credits a delivered order's total back (-> available). Every path from
//! `pending` books at most one of release and capture, so a hold is settled exactly once.

use std::fmt;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OrderStatus {
    /// Placed; its coins are held.
    Pending,
    /// Accepted by an administrator.
    Confirmed,
    /// Being packed.
    Processing,
    /// Handed to the carrier, with a tracking number.
    Shipped,
    /// Received: the held coins are spent.
    Delivered,
    /// Cancelled before shipping: the coins and the stock are back.
    Cancelled,
    /// Delivered, then refunded: the coins are back.
    Refunded,
}

impl OrderStatus {
    /// Every status, in workflow order.
    pub const ALL: [Self; 7] = [
        Self::Pending,
        Self::Confirmed,
        Self::Processing,
        Self::Shipped,
        Self::Delivered,
        Self::Cancelled,
        Self::Refunded,
    ];

    /// The status as stored in `orders.status` and sent on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Processing => "processing",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Cancelled => "cancelled",
            Self::Refunded => "refunded",
        }
    }

    /// The status named `text`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asks for a move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// The order's owner.
    Owner,
    /// An administrator.
    Admin,
}

/// What a move books in the ledger (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    /// Nothing: the hold stays as it is.
    None,
    /// `order_release`: the held total goes back to available.
    Release,
    /// `order_capture`: the held total is spent.
    Capture,
    /// `refund`: a spent total is credited back to available.
    Refund,
}

/// What a legal move does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    /// The status after the move.
    pub to: OrderStatus,
    /// What it books.
    pub booking: Booking,
    /// Whether the ordered items go back into stock.
    pub restock: bool,
    /// Whether the move needs a tracking number (shipping).
    pub needs_tracking: bool,
    /// Whether the move needs a reason (an administrator cancelling or refunding).
    pub needs_reason: bool,
}

/// Why a move is refused: `from` cannot become `to` for this mover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refused {
    /// The order's status.
    pub from: OrderStatus,
    /// The status asked for.
    pub to: OrderStatus,
}

/// The move `from -> to` asked by `mover`, or why it is refused.
pub fn plan(from: OrderStatus, to: OrderStatus, mover: Mover) -> Result<Move, Refused> {
    use OrderStatus::*;
    let legal = match mover {
        Mover::Owner => matches!((from, to), (Pending | Confirmed, Cancelled)),
        Mover::Admin => matches!(
            (from, to),
            (Pending, Confirmed)
                | (Confirmed, Processing)
                | (Processing, Shipped)
                | (Shipped, Delivered)
                | (Pending | Confirmed | Processing, Cancelled)
                | (Delivered, Refunded)
        ),
    };
    if !legal {
        return Err(Refused { from, to });
    }
    Ok(Move {
        to,
        booking: match to {
            Cancelled => Booking::Release,
            Delivered => Booking::Capture,
            Refunded => Booking::Refund,
            Pending | Confirmed | Processing | Shipped => Booking::None,
        },
        restock: to == Cancelled,
        needs_tracking: needs_tracking(to),
        needs_reason: needs_reason(to, mover),
    })
}

/// Whether a move to `to` needs a tracking number: shipping does. Known before the order is
/// read, so a request without one is refused first.
pub const fn needs_tracking(to: OrderStatus) -> bool {
    matches!(to, OrderStatus::Shipped)
}

/// Whether a move to `to` by `mover` needs a reason: an administrator cancelling or refunding
/// explains it (for the audit log and the customer).
pub const fn needs_reason(to: OrderStatus, mover: Mover) -> bool {
    matches!(mover, Mover::Admin) && matches!(to, OrderStatus::Cancelled | OrderStatus::Refunded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn only_the_workflow_steps_are_allowed() {
        use OrderStatus::*;
        let ok = |from, to, mover| plan(from, to, mover).is_ok();
        assert!(ok(Pending, Confirmed, Mover::Admin));
        assert!(ok(Processing, Cancelled, Mover::Admin));
        assert!(!ok(Shipped, Cancelled, Mover::Admin));
        assert!(!ok(Delivered, Cancelled, Mover::Admin));
        assert!(!ok(Pending, Delivered, Mover::Admin));
        assert!(ok(Confirmed, Cancelled, Mover::Owner));
        assert!(!ok(Processing, Cancelled, Mover::Owner));
        assert!(!ok(Pending, Confirmed, Mover::Owner));
        assert_eq!(
            plan(Processing, Shipped, Mover::Admin).map(|m| m.needs_tracking),
            Ok(true)
        );
        assert_eq!(
            plan(Pending, Cancelled, Mover::Owner).map(|m| m.needs_reason),
            Ok(false),
            "an owner cancels without explaining"
        );
    }

    #[test]
    fn statuses_read_back_and_nothing_else_parses() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Some(status));
        }
        for other in ["", "Pending", "lost", "refund"] {
            assert_eq!(OrderStatus::parse(other), None);
        }
    }

    fn mover() -> impl Strategy<Value = Mover> {
        prop_oneof![Just(Mover::Owner), Just(Mover::Admin)]
    }

    fn status() -> impl Strategy<Value = OrderStatus> {
        proptest::sample::select(OrderStatus::ALL.to_vec())
    }

    proptest! {
        /// Whatever anyone asks, in any order, the coins of one order are conserved and its
        /// hold is settled at most once: available + frozen + spent stays the total, frozen
        /// and spent never go negative, and stock comes back at most once.
        #[test]
        fn no_sequence_of_requests_creates_loses_or_double_settles_coins(
            total in 1i64..1_000_000,
            requests in proptest::collection::vec((status(), mover()), 0..40),
        ) {
            let (mut available, mut frozen, mut spent) = (0i64, total, 0i64);
            let mut status = OrderStatus::Pending;
            let (mut settled, mut restocked) = (0, 0);
            for (to, mover) in requests {
                let Ok(step) = plan(status, to, mover) else { continue };
                match step.booking {
                    Booking::None => {}
                    Booking::Release => { frozen -= total; available += total; settled += 1; }
                    Booking::Capture => { frozen -= total; spent += total; settled += 1; }
                    Booking::Refund => { spent -= total; available += total; }
                }
                restocked += usize::from(step.restock);
                prop_assert!(frozen >= 0 && spent >= 0 && available >= 0);
                prop_assert_eq!(available + frozen + spent, total);
                prop_assert!(settled <= 1, "the hold was settled twice");
                prop_assert!(restocked <= 1, "stock came back twice");
                status = step.to;
            }
            // Where the order ends says where its coins are.
            let expected = match status {
                OrderStatus::Delivered => (0, 0, total),
                OrderStatus::Cancelled | OrderStatus::Refunded => (total, 0, 0),
                _ => (0, total, 0),
            };
            prop_assert_eq!((available, frozen, spent), expected);
        }

        /// Cancelled and refunded are final; an owner can do nothing but cancel early.
        #[test]
        fn final_statuses_have_no_way_out_and_owners_only_cancel(
            from in status(), to in status(), mover in mover(),
        ) {
            let step = plan(from, to, mover);
            if matches!(from, OrderStatus::Cancelled | OrderStatus::Refunded) {
                prop_assert!(step.is_err());
            }
            if mover == Mover::Owner && step.is_ok() {
                prop_assert_eq!(to, OrderStatus::Cancelled);
                prop_assert!(matches!(from, OrderStatus::Pending | OrderStatus::Confirmed));
            }
            if let Ok(step) = step {
                prop_assert_ne!(from, to, "a move changes the status");
                prop_assert_eq!(step.to, to);
            }
        }
    }
}
