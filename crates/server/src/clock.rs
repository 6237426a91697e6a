//! The server's one clock: milliseconds since the process first asked. The transports read it
//! and hand `now` to the service (which reads no clock); the watchdog, the admin interface and
//! the lock tracker read it too. A module of its own so that none of them depends on another for
//! the time.

use std::sync::OnceLock;
use std::time::Instant;

/// Milliseconds since the process's first call (monotonic).
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}
