//! Equal login timing: every failed login takes as long as the slowest password verification
//! seen lately, so its time says nothing about whether the account exists, is active, has a
//! usable password, or which hash format its password is in.
//!
//! The lifecycle verifies a dummy hash (the configured hasher's) for an unknown user, an
//! inactive one and an unusable (`!…`) password, and the user's own hash otherwise; then a
//! failure waits out the rest of the floor. The floor is the longest verification of the
//! current and the previous [`WINDOW`] (queue waits left out, so a burst does not raise it),
//! at most [`MAX_FLOOR`]: a migrated Django database's PBKDF2 hashes (about 100 ms at Django's
//! iteration counts) set it as soon as one of them is verified.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a slow verification keeps the floor up after it ran (between one and two windows).
pub const WINDOW: Duration = Duration::from_secs(600);

/// The highest the floor goes: one absurdly expensive hash must not slow every failed login.
pub const MAX_FLOOR: Duration = Duration::from_secs(1);

/// The floor, as the slowest verification of two windows.
#[derive(Debug)]
pub(crate) struct TimingFloor {
    windows: Mutex<Windows>,
}

#[derive(Debug)]
struct Windows {
    started: Instant,
    current: Duration,
    previous: Duration,
}

impl Default for TimingFloor {
    fn default() -> Self {
        Self {
            windows: Mutex::new(Windows {
                started: Instant::now(),
                current: Duration::ZERO,
                previous: Duration::ZERO,
            }),
        }
    }
}

impl TimingFloor {
    /// Notes one verification's time and returns the floor now in force.
    pub(crate) fn observe(&self, took: Duration) -> Duration {
        let Ok(mut w) = self.windows.lock() else {
            return took;
        };
        let age = w.started.elapsed();
        if age >= WINDOW {
            w.previous = if age >= 2 * WINDOW {
                Duration::ZERO
            } else {
                w.current
            };
            w.current = Duration::ZERO;
            w.started = Instant::now();
        }
        w.current = w.current.max(took.min(MAX_FLOOR));
        w.current.max(w.previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_slowest_verification_seen_capped() {
        let floor = TimingFloor::default();
        assert_eq!(
            floor.observe(Duration::from_millis(13)),
            Duration::from_millis(13)
        );
        assert_eq!(
            floor.observe(Duration::from_millis(96)),
            Duration::from_millis(96)
        );
        assert_eq!(
            floor.observe(Duration::from_millis(1)),
            Duration::from_millis(96)
        );
        assert_eq!(floor.observe(Duration::from_secs(30)), MAX_FLOOR);
    }
}
