//! A counter raised while a value lives: requests in flight, connections open.

use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts one in the counter `C` points to from its making until it is dropped (a task that is
/// aborted drops it too).
pub struct Counted<C: Deref<Target = AtomicUsize>>(C);

impl<C: Deref<Target = AtomicUsize>> Counted<C> {
    /// Adds one to `counter` until the returned value is dropped.
    pub fn new(counter: C) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Counted(counter)
    }
}

impl<C: Deref<Target = AtomicUsize>> Drop for Counted<C> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_count_lasts_as_long_as_its_value() {
        let counter = Arc::new(AtomicUsize::new(0));
        let first = Counted::new(counter.clone());
        {
            let _second = Counted::new(&*counter);
            assert_eq!(counter.load(Ordering::Relaxed), 2);
        }
        assert_eq!(counter.load(Ordering::Relaxed), 1);
        drop(first);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
