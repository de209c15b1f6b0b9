//! The request bytes the server may hold at once (`--max-inflight-bytes`): a count that each
//! body's bytes take from as they arrive and give back when the request ends. A share is only
//! ever taken if it fits, never waited for, so the count is one atomic: tokio's semaphore,
//! used before, took a lock to give permits back, on every request (`bench/results/serve_load.md`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The bytes the server may still hold.
#[derive(Debug)]
pub struct Budget {
    total: u64,
    left: AtomicU64,
}

impl Budget {
    /// A budget of `total` bytes, none held.
    pub fn new(total: u64) -> Arc<Self> {
        Arc::new(Budget {
            total,
            left: AtomicU64::new(total),
        })
    }

    /// The bytes held now.
    pub fn held(&self) -> u64 {
        self.total.saturating_sub(self.left.load(Ordering::Relaxed))
    }

    /// An empty share of this budget, for one request's body.
    pub fn share(self: &Arc<Self>) -> Share {
        Share {
            budget: Arc::clone(self),
            bytes: 0,
        }
    }
}

/// The bytes one request holds, given back to the budget when dropped.
#[derive(Debug)]
pub struct Share {
    budget: Arc<Budget>,
    bytes: u64,
}

impl Share {
    /// Takes `bytes` more from the budget if that many are left; false (and nothing taken)
    /// otherwise.
    pub fn try_add(&mut self, bytes: u64) -> bool {
        let taken = self
            .budget
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(bytes)
            });
        if taken.is_ok() {
            self.bytes += bytes;
        }
        taken.is_ok()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        self.budget.left.fetch_add(self.bytes, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_take_what_fits_and_give_it_back_when_dropped() {
        let budget = Budget::new(100);
        let mut a = budget.share();
        assert!(a.try_add(60));
        let mut b = budget.share();
        assert!(!b.try_add(41), "more than is left");
        assert!(b.try_add(40));
        assert_eq!(budget.held(), 100);
        assert!(!a.try_add(1));
        drop(a);
        assert_eq!(budget.held(), 40);
        drop(b);
        assert_eq!(budget.held(), 0);
        let mut huge = Budget::new(u64::MAX).share();
        assert!(huge.try_add(u64::MAX - 1));
    }
}
