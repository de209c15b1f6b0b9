//! Whether a step of task code has proven quick enough to run on the thread that read the
//! request, rather than be handed to another thread (the task's reader to the blocking pool,
//! the model to its own thread), whose hand-off costs two thread wake-ups.
//!
//! Each quick run adds one to a count that holds at most four times the runs [`Streak::proven`]
//! needs; each slow one takes that many away. So a step that is slow more often than about
//! one time in `needed + 1` goes to the other thread, one that turns slow for good within four
//! runs, while a thread that the scheduler interrupts now and then
//! mid-step stays where it is. (Starting over after one slow run sent a third of a small
//! model's requests through the queue and many of their bodies to the pool at 8 clients on
//! 2 cores, where the load generator interrupts the server's threads thousands of times a
//! second: `bench/results/serve_load.md`.)

use std::sync::atomic::{AtomicUsize, Ordering};

/// How many times the runs [`Streak::proven`] needs the count holds at most.
pub const HELD: usize = 4;

/// A count of quick runs of one step (see the module's documentation).
#[derive(Debug)]
pub struct Streak {
    count: AtomicUsize,
    needed: usize,
}

impl Streak {
    /// No run yet; [`Streak::proven`] once `needed` runs were quick.
    pub const fn new(needed: usize) -> Self {
        Streak {
            count: AtomicUsize::new(0),
            needed,
        }
    }

    /// Whether the step may run where the request was read.
    pub fn proven(&self) -> bool {
        self.count.load(Ordering::Relaxed) >= self.needed
    }

    /// Counts a run that was `quick` or not.
    pub fn record(&self, quick: bool) {
        let _ = self
            .count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |count| {
                Some(if quick {
                    (count + 1).min(HELD * self.needed)
                } else {
                    count.saturating_sub(self.needed)
                })
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rare_slow_run_changes_nothing_and_a_step_turned_slow_leaves_within_four() {
        let s = Streak::new(8);
        for _ in 0..7 {
            s.record(true);
        }
        assert!(!s.proven());
        s.record(true);
        assert!(s.proven());
        // A slow run right after proving takes it back.
        s.record(false);
        assert!(!s.proven());
        for _ in 0..100 {
            s.record(true);
        }
        // One slow run in ten, for ever: stays.
        for _ in 0..100 {
            s.record(false);
            for _ in 0..9 {
                s.record(true);
            }
            assert!(s.proven());
        }
        // One in eight, for ever: leaves.
        let mut left = false;
        for _ in 0..40 {
            s.record(false);
            left |= !s.proven();
            for _ in 0..7 {
                s.record(true);
            }
        }
        assert!(left);
        // Slow for good, from a full count: gone after four.
        for _ in 0..40 {
            s.record(true);
        }
        for slow in 1..=4 {
            s.record(false);
            assert_eq!(s.proven(), slow < 4, "{slow}");
        }
    }
}
