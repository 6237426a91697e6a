//! While a thread lingers on a connection (transport::tcp "Lingering"), the connection's socket is
//! out of the runtime's I/O driver (transport::socket), so a call arriving then wakes that thread
//! alone: about one server-side context switch per call, where a registered socket also woke the
//! driver's thread (two). Alone in its own test binary: it counts the wake-ups of every thread of
//! the process but its own, and another test's server would add to them.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use rnfs_client::Client;
use rnfs_server::config::Limits;

const UID: u32 = 1000;

/// Voluntary context switches (the thread slept and was woken) of every thread of this process
/// but the calling one, so far.
fn server_wakeups() -> u64 {
    let me = std::fs::read_link("/proc/thread-self").unwrap();
    let me = me.file_name().unwrap().to_owned();
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap() {
        let task = task.unwrap();
        if task.file_name() == me {
            continue;
        }
        // A thread that ended meanwhile has no status any more.
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

#[test]
fn a_call_read_while_lingering_wakes_one_server_thread() {
    let (_dir, server) = common::embedded_export(Limits::default());
    let mut c = Client::connect_tcp(server.addr())
        .unwrap()
        .with_auth_sys(UID, UID, &[]);
    c.set_timeout(Duration::from_secs(20)).unwrap();
    let root = c.mount(b"/export").unwrap();
    let counters = &server.running.service.counters;
    let lingering = || counters.requests_in_place_lingering.load(Ordering::Relaxed);
    const CALLS: u64 = 2000;
    let (lingered_before, wakeups_before) = (lingering(), server_wakeups());
    for _ in 0..CALLS {
        c.getattr(&root).unwrap();
    }
    let wakeups = server_wakeups() - wakeups_before;
    let lingered = lingering() - lingered_before;
    // A call not read while lingering costs the driver's wake-up, the reader's and a hand-over
    // of the runtime: at most 4. Each read while lingering costs 1 (2 with the socket left in
    // the driver); half a wake-up each to spare, and 100 for the server's own timers.
    let bound = lingered * 3 / 2 + (CALLS - lingered) * 4 + 100;
    println!(
        "{CALLS} calls, {lingered} read while lingering: {wakeups} server wake-ups (bound {bound})"
    );
    assert!(
        lingered >= CALLS / 4,
        "too few calls read while lingering ({lingered} of {CALLS}) to tell"
    );
    assert!(
        wakeups <= bound,
        "{wakeups} server wake-ups for {CALLS} calls, {lingered} read while lingering: \
         the driver still wakes for a lingering connection's calls"
    );
    server.stop().unwrap();
}
