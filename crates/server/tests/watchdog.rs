//! Fault injection: a file-system call that stalls is reported by the watchdog within twice its
//! bound, naming the procedure and what it waits on, while the server keeps serving others.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rnfs_client::Client;
use rnfs_server::config::Limits;
use rnfs_server::Embedded;
use rnfs_storage::fault::{Action, FaultBackend, Op, Rule};
use rnfs_storage::handle::HandleKey;
use rnfs_storage::local::LocalFs;

const STALL_BOUND_MS: u64 = 400;
const INJECTED_STALL: Duration = Duration::from_millis(2500);

#[test]
fn stalled_read_is_reported_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let export_dir = dir.path().join("export");
    std::fs::create_dir(&export_dir).unwrap();
    let data: Vec<u8> = (0..(256u32 << 10)).map(|i| (i % 251) as u8).collect();
    std::fs::write(export_dir.join("slow"), &data).unwrap();

    // The export: the local backend behind a fault injector that stalls the next READ.
    let key = HandleKey::random().unwrap();
    let local = Arc::new(LocalFs::new(7, &export_dir, key).unwrap());
    let faulty = Arc::new(FaultBackend::new(local));
    let limits = Limits {
        stall_bound_ms: STALL_BOUND_MS,
        ..Limits::default()
    };
    let server = Embedded::start(
        faulty.clone(),
        7,
        "/export",
        export_dir.clone(),
        limits,
        dir.path().join("state"),
    )
    .unwrap();
    let running = server.running.clone();
    let addr: SocketAddr = server.addr();

    let mut setup = Client::connect_tcp(addr)
        .unwrap()
        .with_auth_sys(1000, 1000, &[]);
    let root = setup.mount(b"/export").unwrap();
    let file = setup.lookup(&root, b"slow").unwrap().object;

    // The setup connection's thread may still linger for its next call, holding the in-place
    // slot (see transport::tcp, "Lingering"); it gives it up within LINGER_MS_MAX.
    std::thread::sleep(Duration::from_millis(100));
    faulty.add_rule(Rule {
        op: Op::Read,
        action: Action::Delay(INJECTED_STALL),
        times: Some(1),
    });
    let started = Instant::now();
    let slow_reader = std::thread::spawn(move || {
        let mut c = Client::connect_tcp(addr)
            .unwrap()
            .with_auth_sys(1000, 1000, &[]);
        c.set_timeout(Duration::from_secs(20)).unwrap();
        c.read(&file, 0, 128 << 10).unwrap()
    });

    // The READ came alone to an idle server: it runs on the thread that read it (see
    // transport::InPlace), which has handed its share of the runtime over.
    let counters = &running.service.counters;
    let run_count = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    let in_place_before = run_count(&counters.requests_in_place);
    let pooled_before = run_count(&counters.requests_pooled);
    while run_count(&counters.requests_in_place) == in_place_before {
        assert!(started.elapsed() < INJECTED_STALL, "the READ ran in place");
        std::thread::sleep(Duration::from_millis(5));
    }

    // Meanwhile another client is served promptly, and the watchdog reports the stall.
    let mut other = Client::connect_tcp(addr)
        .unwrap()
        .with_auth_sys(1000, 1000, &[]);
    let mut report = None;
    let mut slowest_getattr = Duration::ZERO;
    let mut getattrs = 0;
    while started.elapsed() < INJECTED_STALL - Duration::from_millis(300) {
        let t = Instant::now();
        other.getattr(&root).unwrap();
        getattrs += 1;
        slowest_getattr = slowest_getattr.max(t.elapsed());
        if report.is_none() {
            report = running
                .watch
                .reports()
                .into_iter()
                .find(|r| r.summary.contains("NFS READ"));
            if report.is_some() {
                let seen_after = started.elapsed();
                assert!(
                    seen_after <= Duration::from_millis(2 * STALL_BOUND_MS + 200),
                    "reported after {seen_after:?}, bound is {STALL_BOUND_MS} ms"
                );
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = report.expect("the watchdog reported the stalled READ");
    // The request waits in its backend call, and the report says which one (crate::backend_gate).
    assert!(
        report
            .text
            .contains("waiting on: backend call read of export"),
        "names what it waits on:\n{}",
        report.text
    );
    assert!(
        report.text.contains("loans outstanding"),
        "lists loans:\n{}",
        report.text
    );
    assert!(
        report.text.contains("service.exports"),
        "lists locks:\n{}",
        report.text
    );
    assert!(
        slowest_getattr < Duration::from_secs(1),
        "other clients kept being served ({slowest_getattr:?})"
    );
    // While one call runs in place, no other does: every GETATTR went to the pool.
    assert_eq!(
        run_count(&counters.requests_pooled) - pooled_before,
        getattrs
    );
    assert_eq!(run_count(&counters.requests_in_place) - in_place_before, 1);
    // The runtime kept running: the heartbeat never went stale.
    let reports_of = |what: &str| -> Vec<_> {
        running
            .watch
            .reports()
            .into_iter()
            .filter(|r| r.summary.contains(what))
            .collect()
    };
    let runtime_stalls = reports_of("heartbeat");
    assert!(runtime_stalls.is_empty(), "{runtime_stalls:?}");
    assert!(
        running
            .watch
            .stalls_total
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );

    // The stalled READ completes correctly, and exactly once was the stall reported.
    let res = slow_reader.join().unwrap();
    assert_eq!(res.data.as_bytes(), &data[..128 << 10]);
    assert_eq!(reports_of("NFS READ").len(), 1, "one report per stall");

    server.stop().unwrap();
}
