//! The server's one clock: milliseconds since the process first asked. The transports read it
//! and hand `now` to the service (which reads no clock); the watchdog, the admin interface and
//! the lock tracker read it too. A module of its own so that none of them depends on another for
//! the time.

use std::sync::OnceLock;
use std::time::Instant;

/// When the process first asked.
static START: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the process's first call (monotonic).
pub fn now_ms() -> u64 {
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// The instant `ms` milliseconds after the clock's start: the moment [`now_ms`] reaches `ms`,
/// for timers armed from deadlines in milliseconds. Far in the future if `ms` is out of range.
pub fn instant_at(ms: u64) -> Instant {
    let start = *START.get_or_init(Instant::now);
    start
        .checked_add(std::time::Duration::from_millis(ms))
        .unwrap_or_else(|| Instant::now() + FAR_FUTURE)
}

/// What "never" means for a timer (as tokio's own far future: some 30 years).
const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(86_400 * 365 * 30);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instant_at_is_when_now_ms_reaches_it() {
        let now = now_ms();
        let before = Instant::now();
        let at = instant_at(now + 1000);
        assert!(at <= before + std::time::Duration::from_millis(1000));
        assert!(at > Instant::now(), "a second ahead is still to come");
        let soon = instant_at(now + 5);
        std::thread::sleep(soon.saturating_duration_since(Instant::now()));
        assert!(
            now_ms() >= now + 5,
            "asleep until it, the clock has reached it"
        );
        assert!(
            instant_at(u64::MAX) > Instant::now() + FAR_FUTURE / 2,
            "out of range: never"
        );
    }
}
