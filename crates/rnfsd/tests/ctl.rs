//! `rnfsd ctl` and `/metrics` against running servers with real clients: what an admin sees must
//! match what the clients did.
//!
//! Most tests run the real binary ([`TestServer`]); the ones that need a stalled file-system call
//! or a lock held on purpose run the server in-process (same `serve_with`, with a fault-injecting
//! backend) and still ask it through `rnfsd ctl --socket ... --json`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use rnfs_client::nfs3::{
    nfs_fh3, nfsstat3, READ3args, NFSPROC3_GETATTR, NFSPROC3_READ, NFS_PROGRAM, NFS_V3,
};
use rnfs_client::{Client, Error};
use rnfs_storage::fault::{Action, FaultBackend, Op, Rule};
use serde_json::Value;

const CTL_TIMEOUT: Duration = Duration::from_secs(30);

/// `rnfsd ctl --json ARGS` against the control socket `socket`; returns `data` of a successful
/// reply, panics otherwise.
fn ctl(socket: &Path, args: &[&str]) -> Value {
    let reply = ctl_reply(socket, args);
    assert_eq!(
        reply["ok"],
        Value::Bool(true),
        "rnfsd ctl {args:?}: {reply}"
    );
    reply["data"].clone()
}

/// The whole JSON reply (successful or not).
fn ctl_reply(socket: &Path, args: &[&str]) -> Value {
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .arg("ctl")
            .arg("--socket")
            .arg(socket)
            .arg("--json")
            .args(args),
        CTL_TIMEOUT,
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("rnfsd ctl {args:?}: not JSON ({e}):\n{}", out.describe()))
}

fn socket_of(srv: &TestServer) -> PathBuf {
    srv.state_dir().join("rnfsd.sock")
}

fn tcp_client(addr: SocketAddr) -> Client {
    Client::connect_tcp(addr)
        .unwrap()
        .with_auth_sys(USER, USER, &[USER])
}

/// Polls `f` until it returns `Some`, for at most `limit`.
fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ---- the real binary --------------------------------------------------------------------------

/// `rnfsd ctl ARGS` exactly as given (no options added).
fn ctl_raw(args: &[&std::ffi::OsStr]) -> ToolOutput {
    run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .arg("ctl")
            .args(args),
        CTL_TIMEOUT,
    )
}

/// Options after the command work as before it (`rnfsd ctl status --json` used to be sent to the
/// server as the command "status --json" and refused).
#[test]
fn ctl_options_work_after_the_command() {
    let srv = TestServer::start_default();
    let sock = socket_of(&srv);
    let state = srv.state_dir().as_os_str();
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    let json_of = |out: &ToolOutput| -> Value {
        out.assert_success();
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe()))
    };
    let cases: [Vec<&std::ffi::OsStr>; 4] = [
        vec![os("status"), os("--json"), os("--socket"), sock.as_os_str()],
        vec![os("--json"), os("status"), os("--state-dir"), state],
        vec![os("--state-dir"), state, os("status"), os("--json")],
        vec![
            os("nfs4"),
            os("--json"),
            os("clients"),
            os("--state-dir"),
            state,
        ],
    ];
    for args in &cases {
        let reply = json_of(&ctl_raw(args));
        assert_eq!(reply["ok"], Value::Bool(true), "{args:?}: {reply}");
    }
    // `--socket=PATH` too, and a ctl option after a command's own `--client` option.
    let inline = format!("--socket={}", sock.display());
    let reply = json_of(&ctl_raw(&[
        os("log"),
        os("--client"),
        os("127.0.0.9"),
        os("off"),
        std::ffi::OsStr::new(&inline),
        os("--json"),
    ]));
    assert_eq!(reply["ok"], Value::Bool(true), "{reply}");
    // Tables without --json, the state directory after the command.
    let out = ctl_raw(&[os("status"), os("--state-dir"), state]);
    assert!(out.stdout_str().starts_with("rnfsd "), "{}", out.describe());
    // Conflicting or repeated options are refused before anything is sent.
    let out = ctl_raw(&[
        os("--socket"),
        sock.as_os_str(),
        os("status"),
        os("--state-dir"),
        state,
    ]);
    out.assert_failure();
    assert!(out.stderr.contains("not both"), "{}", out.describe());
    let out = ctl_raw(&[os("status"), os("--json"), os("--socket")]);
    out.assert_failure();
    assert!(out.stderr.contains("needs a value"), "{}", out.describe());
}

#[test]
fn connection_appears_with_its_peer_auth_and_counters() {
    let mut srv = TestServer::new();
    std::fs::write(srv.export().join("f.txt"), b"hello\n").unwrap();
    srv.start();
    let sock = socket_of(&srv);

    // libnfs traffic first: its requests are counted, and its connection is gone once it exits.
    let before = ctl(&sock, &["status"])["requests_total"].as_u64().unwrap();
    let out = nfs_cat(&srv.url("/f.txt", USER, USER), TOOL_TIMEOUT);
    out.assert_success();
    assert_eq!(out.stdout, b"hello\n");
    let after = ctl(&sock, &["status"])["requests_total"].as_u64().unwrap();
    assert!(
        after > before,
        "libnfs requests counted: {before} -> {after}"
    );

    // A connection that stays open is listed with its peer address, credential and counters.
    let mut c = tcp_client(srv.tcp_addr());
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    for _ in 0..3 {
        c.getattr(&root).unwrap();
    }
    let me = c.local_addr().unwrap().to_string();
    // (A request is counted as served once its reply is sent, which can be just after the client
    // has it.)
    let mine = wait_for(Duration::from_secs(5), "4 requests served", || {
        let conns = ctl(&sock, &["connections"]);
        let mine = conns
            .as_array()?
            .iter()
            .find(|x| x["peer"] == me.as_str())
            .unwrap_or_else(|| panic!("no connection from {me} in {conns:#}"))
            .clone();
        (mine["requests_served"] == 4).then_some(mine)
    });
    assert_eq!(mine["transport"], "tcp");
    assert_eq!(mine["auth"], "AUTH_SYS");
    assert_eq!(mine["uid"], USER);
    assert_eq!(mine["in_flight"], 0);
    assert!(mine["bytes_in"].as_u64().unwrap() > 0 && mine["bytes_out"].as_u64().unwrap() > 0);
    let status = ctl(&sock, &["status"]);
    assert_eq!(status["connections"], 1, "{status:#}");
    assert_eq!(
        status["exports"][0]["mount_path"],
        srv.mount_path().as_str()
    );
    assert_eq!(status["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        status["listeners"][0],
        format!("tcp {}", srv.tcp_addr()).as_str()
    );

    // Served from a directory, not a file: there is nothing to reload.
    let reload = ctl_reply(&sock, &["exports", "reload"]);
    assert_eq!(reload["ok"], false, "{reload}");

    // The human-readable form of the same.
    let human = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .args(["ctl", "--state-dir"])
            .arg(srv.state_dir())
            .arg("connections"),
        CTL_TIMEOUT,
    );
    human.assert_success();
    let text = human.stdout_str();
    assert!(text.starts_with("ID") && text.contains(&me), "{text}");
}

/// Reads `/metrics` from `url` (`http://ADDR/metrics`) with a plain HTTP/1.1 GET.
fn scrape(url: &str) -> String {
    let addr = url
        .strip_prefix("http://")
        .and_then(|r| r.strip_suffix("/metrics"))
        .unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    body.to_owned()
}

/// The value of the sample `name{labels}` (labels exactly as printed), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

#[test]
fn metrics_move_by_exactly_the_requests_sent() {
    let mut srv = TestServer::new().args(["--metrics", "127.0.0.1:0"]);
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(srv.export().join("data"), &data).unwrap();
    set_mode(&srv.export().join("data"), 0o666);
    srv.start();
    let sock = socket_of(&srv);
    let url = ctl(&sock, &["status"])["metrics"]
        .as_str()
        .expect("status names the metrics URL")
        .to_owned();

    let mut c = tcp_client(srv.tcp_addr());
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    let file = c.lookup(&root, b"data").unwrap().object;

    let getattr = r#"rnfsd_requests_total{program="NFS",procedure="GETATTR"}"#;
    let lookup = r#"rnfsd_requests_total{program="NFS",procedure="LOOKUP"}"#;
    let noent =
        r#"rnfsd_request_errors_total{program="NFS",procedure="LOOKUP",status="NFS3ERR_NOENT"}"#;
    let read = r#"rnfsd_requests_total{program="NFS",procedure="READ"}"#;
    let read_bytes = |t: &str| {
        sample(t, r#"rnfsd_read_bytes_total{path="zero_copy"}"#)
            + sample(t, r#"rnfsd_read_bytes_total{path="buffered"}"#)
    };
    let getattr_hist = r#"rnfsd_request_duration_seconds_count{program="NFS",procedure="GETATTR"}"#;

    let m0 = scrape(&url);
    for _ in 0..25 {
        c.getattr(&root).unwrap();
    }
    for i in 0..7 {
        let r = c.lookup(&root, format!("missing-{i}").as_bytes());
        assert!(
            matches!(r, Err(Error::Nfs(nfsstat3::NFS3ERR_NOENT))),
            "{r:?}"
        );
    }
    let got = c.read(&file, 0, 100_000).unwrap();
    assert_eq!(got.data.as_bytes(), &data[..]);
    // (Rewrites the same bytes, so the file is unchanged for the nfs-cat below.)
    let w = c
        .write(
            &file,
            0,
            bytes::Bytes::copy_from_slice(&data[..5000]),
            rnfs_client::nfs3::stable_how::FILE_SYNC,
        )
        .unwrap();
    assert_eq!(w.count, 5000);
    let m1 = scrape(&url);

    assert_eq!(sample(&m1, getattr) - sample(&m0, getattr), 25.0);
    assert_eq!(sample(&m1, getattr_hist) - sample(&m0, getattr_hist), 25.0);
    assert_eq!(sample(&m1, lookup) - sample(&m0, lookup), 7.0);
    assert_eq!(sample(&m1, noent) - sample(&m0, noent), 7.0);
    assert_eq!(sample(&m1, read) - sample(&m0, read), 1.0);
    assert_eq!(read_bytes(&m1) - read_bytes(&m0), 100_000.0);
    let write = r#"rnfsd_requests_total{program="NFS",procedure="WRITE"}"#;
    assert_eq!(sample(&m1, write) - sample(&m0, write), 1.0);
    assert_eq!(
        sample(&m1, "rnfsd_write_bytes_total") - sample(&m0, "rnfsd_write_bytes_total"),
        5000.0
    );
    for series in [
        "rnfsd_drc_hits_total",
        "rnfsd_loans_outstanding",
        "rnfsd_loan_bytes_outstanding",
        "rnfsd_watchdog_stalls_total",
        "rnfsd_connections",
        r#"rnfsd_network_bytes_total{direction="in"}"#,
        "rnfsd_write_bytes_total",
    ] {
        assert!(
            m1.lines().any(|l| l.starts_with(&format!("{series} "))),
            "{series} is exported:\n{m1}"
        );
    }
    assert_eq!(sample(&m1, "rnfsd_connections"), 1.0);

    // One call at a time, each runs on the thread that read it, but the FILE_SYNC WRITE (it
    // waits for the disk) runs on the pool; a burst read in one go runs on the pool too (below).
    let in_place = r#"rnfsd_requests_run_total{on="in_place"}"#;
    let pooled = r#"rnfsd_requests_run_total{on="pool"}"#;
    assert_eq!(sample(&m1, in_place) - sample(&m0, in_place), 33.0, "{m1}");
    assert_eq!(sample(&m1, pooled) - sample(&m0, pooled), 1.0, "{m1}");

    // The same numbers through `rnfsd ctl stats`.
    let stats = ctl(&sock, &["stats"]);
    let proc_calls = |name: &str| {
        stats["procedures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["program"] == "NFS" && p["procedure"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {stats:#}"))
    };
    assert_eq!(proc_calls("GETATTR")["calls"], sample(&m1, getattr) as u64);
    assert_eq!(proc_calls("LOOKUP")["errors"]["NFS3ERR_NOENT"], 7);
    assert!(proc_calls("GETATTR")["latency_us"]["p99"]
        .as_u64()
        .is_some());
    // The histogram itself, for clients that difference two replies (`ctl top`).
    let buckets = proc_calls("GETATTR")["latency_buckets"].clone();
    let buckets: Vec<u64> = serde_json::from_value(buckets).unwrap();
    assert_eq!(buckets.iter().sum::<u64>(), sample(&m1, getattr) as u64);
    let bounds = stats["latency_bucket_upper_us"].as_array().unwrap();
    assert_eq!(bounds.len(), buckets.len());
    assert_eq!(bounds[0], 8);
    assert!(
        bounds.last().unwrap().is_null(),
        "the last bucket is unbounded"
    );

    // libnfs: one nfs-cat moves READ bytes by exactly the file's size.
    let before = read_bytes(&m1);
    let out = nfs_cat(&srv.url("/data", USER, USER), TOOL_TIMEOUT);
    out.assert_success();
    assert_eq!(out.stdout, data);
    let m2 = scrape(&url);
    assert_eq!(read_bytes(&m2) - before, 100_000.0);

    let burst = 16;
    let args = rnfs_xdr::to_bytes(&root);
    let first = c.next_xid();
    let calls: Vec<bytes::Bytes> = (0..burst)
        .map(|i| {
            rnfs_client::rpc::encode_call(
                first + i,
                NFS_PROGRAM,
                NFS_V3,
                NFSPROC3_GETATTR,
                c.auth(),
                &args,
            )
        })
        .collect();
    let calls: Vec<&[u8]> = calls.iter().map(|b| b.as_ref()).collect();
    c.send_messages(&calls).unwrap();
    for _ in 0..burst {
        c.recv_reply().unwrap();
    }
    let m3 = scrape(&url);
    let ran = |m: &str, which: &str| sample(m, which) - sample(&m2, which);
    assert_eq!(ran(&m3, in_place) + ran(&m3, pooled), f64::from(burst));
    // Only the last of the burst can find nothing left to read after it.
    assert!(ran(&m3, pooled) >= f64::from(burst - 1), "{m3}");
}

#[test]
fn loan_is_listed_while_its_send_is_held_back() {
    let mut srv = TestServer::new();
    let path = srv.export().join("big");
    write_random_file(&path, 16 << 20, 5);
    srv.start();
    let sock = socket_of(&srv);

    let mut c = tcp_client(srv.tcp_addr());
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    let file = c.lookup(&root, b"big").unwrap().object;

    // A client with a tiny receive buffer that asks for 16 MiB and reads none of it: the server's
    // socket buffer fills, and the replies wait with their loans lent.
    let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    raw.set_recv_buffer_size(4096).unwrap();
    raw.connect(&srv.tcp_addr().into()).unwrap();
    let mut raw: TcpStream = raw.into();
    let me = raw.local_addr().unwrap().to_string();
    for i in 0..16u32 {
        send_read(
            &mut raw,
            c.auth(),
            0x5000 + i,
            &file,
            u64::from(i) << 20,
            1 << 20,
        );
    }

    let loans = wait_for(
        Duration::from_secs(20),
        "a lent loan owned by our connection",
        || {
            let d = ctl(&sock, &["loans"]);
            let mine: Vec<Value> = d["loans"]
                .as_array()?
                .iter()
                .filter(|l| l["peer"] == me.as_str() && l["state"] == "lent")
                .cloned()
                .collect();
            (!mine.is_empty()).then_some((d, mine))
        },
    );
    let (all, mine) = loans;
    assert!(all["outstanding"].as_u64().unwrap() >= mine.len() as u64);
    for l in &mine {
        assert_eq!(l["bytes"], 1 << 20, "{l}");
        assert_eq!(l["offset"].as_u64().unwrap() % (1 << 20), 0, "{l}");
        assert_eq!(l["kind"], "zero-copy", "{l}");
    }
    // The held-back replies are requests at the send stage.
    let reqs = ctl(&sock, &["requests"]);
    assert!(
        reqs.as_array()
            .unwrap()
            .iter()
            .any(|r| r["peer"] == me.as_str()
                && r["stage"] == "send"
                && r["procedure"] == "NFS READ"),
        "{reqs:#}"
    );
    // A loan ages while it waits (the last one queued: earlier replies may still drain into the
    // socket buffers).
    let last = mine
        .iter()
        .max_by_key(|l| l["offset"].as_u64())
        .unwrap()
        .clone();
    let age0 = last["age_ms"].as_u64().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let later = ctl(&sock, &["loans"]);
    let same = later["loans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["slot"] == last["slot"] && l["offset"] == last["offset"])
        .unwrap_or_else(|| panic!("{last} still lent: {later:#}"));
    assert!(
        same["age_ms"].as_u64().unwrap() >= age0 + 250,
        "{same} vs {age0}"
    );

    // Closing the connection returns every loan.
    drop(raw);
    wait_for(Duration::from_secs(20), "loans returned", || {
        let d = ctl(&sock, &["loans"]);
        d["loans"]
            .as_array()?
            .iter()
            .all(|l| l["peer"] != me.as_str() || l["state"] == "returned")
            .then_some(())
    });
}

fn send_read(
    s: &mut TcpStream,
    auth: &rnfs_client::Auth,
    xid: u32,
    fh: &nfs_fh3,
    off: u64,
    n: u32,
) {
    let args = rnfs_xdr::to_bytes(&READ3args {
        file: fh.clone(),
        offset: off,
        count: n,
    });
    let msg = rnfs_client::rpc::encode_call(xid, NFS_PROGRAM, NFS_V3, NFSPROC3_READ, auth, &args);
    rnfs_client::rpc::write_record(s, &msg, usize::MAX).unwrap();
}

const RELOAD_CONFIG: &str = r#"
[[export]]
path = "EXPORT"
[[export.client]]
match = "127.0.0.1"
access = "rw"
RULE2
"#;

fn reload_config(srv: &TestServer, with_second: bool) -> String {
    RELOAD_CONFIG.replace("EXPORT", &srv.mount_path()).replace(
        "RULE2",
        if with_second {
            "[[export.client]]\nmatch = \"127.0.0.2\"\naccess = \"rw\""
        } else {
            ""
        },
    )
}

#[test]
fn exports_reload_removes_access_without_disturbing_a_transfer() {
    let mut srv = TestServer::new();
    let len: u64 = 32 << 20;
    write_random_file(&srv.export().join("big"), len, 77);
    let text = reload_config(&srv, true);
    srv.set_config(&text);
    srv.start();
    let sock = socket_of(&srv);
    let config_path = srv.scratch().join("rnfsd.toml");

    // Client B (127.0.0.2) is served.
    let mut b = Client::connect_tcp_from("127.0.0.2:0".parse().unwrap(), srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    let b_root = b.mount(srv.mount_path().as_bytes()).unwrap();
    b.getattr(&b_root).unwrap();

    // Client A (127.0.0.1) starts a 32 MiB nfs-cat; we read 1 MiB of it and then stop reading, so
    // it is mid-transfer (blocked on its full stdout pipe) while the table changes.
    let mut a = nfs_cat_stream(&srv.url("/big", USER, USER), Duration::from_secs(120));
    let mut got = vec![0u8; 1 << 20];
    a.stdout.as_mut().unwrap().read_exact(&mut got).unwrap();

    // Remove B's rule and reload, without restarting.
    std::fs::write(&config_path, reload_config(&srv, false)).unwrap();
    let reloaded = ctl(&sock, &["exports", "reload"]);
    assert_eq!(
        reloaded["changed"][0],
        srv.mount_path().as_str(),
        "{reloaded:#}"
    );
    assert_eq!(reloaded["exports"][0]["rules"].as_array().unwrap().len(), 1);
    let shown = ctl(&sock, &["exports"]);
    assert_eq!(shown["exports"][0]["rules"][0]["match"], "127.0.0.1/32");

    // B is refused from its next call on, on its existing connection and at MOUNT.
    match b.getattr(&b_root) {
        Err(Error::Nfs(nfsstat3::NFS3ERR_ACCES)) => {}
        other => panic!("B should be refused after the reload: {other:?}"),
    }
    let mut b2 = Client::connect_tcp_from("127.0.0.2:0".parse().unwrap(), srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    assert!(
        b2.mount(srv.mount_path().as_bytes()).is_err(),
        "MNT refused"
    );

    // A's transfer completes byte-exact.
    a.stdout.as_mut().unwrap().read_to_end(&mut got).unwrap();
    let out = a.finish(Vec::new());
    out.assert_success();
    assert_eq!(got.len() as u64, len);
    let want = std::fs::read(srv.export().join("big")).unwrap();
    assert!(got == want, "nfs-cat output differs from the file");

    // A bad configuration is refused and the table stays as it was.
    std::fs::write(&config_path, "this is not toml [").unwrap();
    let bad = ctl_reply(&sock, &["exports", "reload"]);
    assert_eq!(bad["ok"], false, "{bad}");
    assert_eq!(
        ctl(&sock, &["exports"])["exports"][0]["rules"][0]["match"],
        "127.0.0.1/32"
    );
    assert!(srv.is_running());
}

#[test]
fn log_filter_and_per_client_debug_switch_at_run_time() {
    let mut srv = TestServer::new();
    srv.start();
    let sock = socket_of(&srv);
    let mut a = tcp_client(srv.tcp_addr());
    let mut b = Client::connect_tcp_from("127.0.0.2:0".parse().unwrap(), srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    let a_root = a.mount(srv.mount_path().as_bytes()).unwrap();
    let b_root = b.mount(srv.mount_path().as_bytes()).unwrap();
    let debug_lines = |srv: &TestServer, who: &str| {
        srv.log()
            .lines()
            .filter(|l| l.contains("DEBUG") && l.contains(&format!("client={who}:")))
            .count()
    };
    a.getattr(&a_root).unwrap();
    b.getattr(&b_root).unwrap();
    assert_eq!(debug_lines(&srv, "127.0.0.2"), 0, "info by default");

    // Per-client debug: B's requests log at debug, A's do not.
    let d = ctl(&sock, &["log", "--client", "127.0.0.2", "debug"]);
    assert_eq!(d["debug_clients"][0], "127.0.0.2");
    a.getattr(&a_root).unwrap();
    b.getattr(&b_root).unwrap();
    wait_for(Duration::from_secs(5), "B's debug line", || {
        (debug_lines(&srv, "127.0.0.2") >= 1).then_some(())
    });
    assert!(srv
        .log()
        .lines()
        .any(|l| l.contains("DEBUG request{xid=") && l.contains("procedure=\"GETATTR\"")));
    assert_eq!(debug_lines(&srv, "127.0.0.1"), 0, "A stays at info");

    // Off again, then the global filter: everyone's requests log at debug.
    ctl(&sock, &["log", "--client", "127.0.0.2", "off"]);
    let d = ctl(&sock, &["log", "rnfs_server=debug"]);
    assert_eq!(d["filter"], "rnfs_server=debug");
    assert_eq!(d["debug_clients"].as_array().unwrap().len(), 0);
    a.getattr(&a_root).unwrap();
    wait_for(Duration::from_secs(5), "A's debug line", || {
        (debug_lines(&srv, "127.0.0.1") >= 1).then_some(())
    });
    let d = ctl(&sock, &["log", "info"]);
    assert_eq!(d["filter"], "info");
    assert_eq!(ctl_reply(&sock, &["log", "not[a filter"])["ok"], false);
}

#[test]
fn control_socket_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut srv = TestServer::new();
    srv.start();
    let sock = socket_of(&srv);
    let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // Unknown commands and garbage are answered, not fatal.
    assert_eq!(ctl_reply(&sock, &["frobnicate"])["ok"], false);
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{not json\n").unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut line).unwrap();
    assert!(line.contains("\"ok\":false"), "{line}");
    // An oversized request is refused and the connection closed.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(&vec![b'x'; 16 << 10]);
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    assert!(reply.contains("longer than"), "{reply}");

    // (Needs the binary reachable by uid 65534: every directory above it searchable by others.)
    let bin = Path::new(env!("CARGO_BIN_EXE_rnfsd"));
    let reachable = bin
        .ancestors()
        .all(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if running_as_root() && reachable {
        // Even with the file opened up, a peer that is neither root nor the server's user is
        // refused (SO_PEERCRED).
        std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o666)).unwrap();
        set_mode(srv.state_dir(), 0o711);
        use std::os::unix::process::CommandExt;
        let out = run_bounded(
            Command::new(env!("CARGO_BIN_EXE_rnfsd"))
                .args(["ctl", "--json", "--socket"])
                .arg(&sock)
                .arg("status")
                .uid(65534)
                .gid(65534),
            CTL_TIMEOUT,
        );
        assert!(!out.success(), "{}", out.describe());
        assert!(
            out.stdout_str().contains("permission denied"),
            "{}",
            out.describe()
        );
    }
    // The socket goes away with the server.
    srv.stop();
    assert!(!sock.exists());
}

#[test]
fn progress_line_is_printed() {
    let mut srv = TestServer::new().args(["--progress", "1"]);
    srv.start();
    let mut c = tcp_client(srv.tcp_addr());
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    for _ in 0..10 {
        c.getattr(&root).unwrap();
    }
    wait_for(Duration::from_secs(10), "a progress line", || {
        srv.log()
            .lines()
            .any(|l| l.starts_with("rnfsd: ") && l.contains("req/s") && l.contains("1 connections"))
            .then_some(())
    });
}

/// `rnfsd ctl top ARGS` against `srv`, as a pipe sees it.
fn top(srv: &TestServer, args: &[&str]) -> String {
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .args(["ctl", "top"])
            .args(args)
            .arg("--state-dir")
            .arg(srv.state_dir()),
        CTL_TIMEOUT,
    );
    out.assert_success();
    out.stdout_str()
}

/// The numbers of the table row starting with `first` (its first word or two), from the last
/// table of `text`.
fn top_row(text: &str, first: &str) -> Option<Vec<String>> {
    let last = text.rsplit("rnfsd top:").next()?;
    last.lines().find_map(|l| {
        let rest = l.strip_prefix(first)?.strip_prefix("  ")?;
        Some(rest.split_whitespace().map(str::to_owned).collect())
    })
}

fn rate(cells: &[String], i: usize) -> f64 {
    cells[i].parse().unwrap()
}

/// `ctl top` shows the client making calls, by its address, and the procedure it calls, with
/// nonzero rates while the traffic runs, and zero rates once it stops.
#[test]
fn top_shows_the_busy_client_and_procedure() {
    let srv = TestServer::start_default();
    let idle = top(&srv, &["--count", "1", "--interval", "0.5"]);
    assert!(idle.starts_with("rnfsd top: 0.0 calls/s"), "{idle}");
    assert_eq!(idle.matches("rnfsd top:").count(), 1, "{idle}");

    // GETATTRs from 127.0.0.5 for the whole of top's two intervals.
    let local: SocketAddr = "127.0.0.5:0".parse().unwrap();
    let mut c = Client::connect_tcp_from(local, srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    let root = c.mount(srv.mount_path().as_bytes()).unwrap();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                c.getattr(&root).unwrap();
            }
            c
        })
    };
    // And from 127.0.0.6, short connections: each gone before top's next poll can see it.
    let (addr, mount) = (srv.tcp_addr(), srv.mount_path());
    let short = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let local: SocketAddr = "127.0.0.6:0".parse().unwrap();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut c = Client::connect_tcp_from(local, addr)
                    .unwrap()
                    .with_auth_sys(USER, USER, &[USER]);
                c.mount(mount.as_bytes()).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let busy = top(&srv, &["--count", "2", "--interval", "1"]);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let c = load.join().unwrap();
    short.join().unwrap();
    assert!(
        !busy.contains('\x1b'),
        "no screen clearing into a pipe: {busy:?}"
    );
    assert_eq!(busy.matches("rnfsd top:").count(), 2, "{busy}");
    let client = top_row(&busy, "127.0.0.5").unwrap_or_else(|| panic!("{busy}"));
    assert_eq!(client[0], "1", "one connection: {busy}");
    assert!(rate(&client, 1) > 10.0, "calls/s: {busy}");
    let shorts = top_row(&busy, "127.0.0.6").unwrap_or_else(|| panic!("{busy}"));
    assert!(rate(&shorts, 1) > 1.0, "closed connections count: {busy}");
    let getattr = top_row(&busy, "NFS GETATTR").unwrap_or_else(|| panic!("{busy}"));
    assert!(rate(&getattr, 0) > 10.0, "calls/s: {busy}");
    let mnt = top_row(&busy, "MOUNT MNT").unwrap_or_else(|| panic!("{busy}"));
    assert!(rate(&mnt, 0) > 1.0, "calls/s: {busy}");
    assert_eq!(rate(&getattr, 1), 0.0, "errors/s: {busy}");
    assert!(
        getattr[2].ends_with('s') && getattr[3].ends_with('s'),
        "p50, p99: {busy}"
    );

    // Still connected, and idle: listed with zero rates.
    let quiet = top(&srv, &["--count", "1", "--interval", "0.5"]);
    let client = top_row(&quiet, "127.0.0.5").unwrap_or_else(|| panic!("{quiet}"));
    assert_eq!(rate(&client, 1), 0.0, "{quiet}");
    let getattr = top_row(&quiet, "NFS GETATTR").unwrap_or_else(|| panic!("{quiet}"));
    assert_eq!(rate(&getattr, 0), 0.0, "{quiet}");
    assert_eq!(getattr[2], "-", "no calls, no latency: {quiet}");
    assert!(
        top_row(&quiet, "127.0.0.6").is_none(),
        "gone and idle: {quiet}"
    );

    // What top is made of: every client's totals, closed connections included.
    let totals = ctl(&socket_of(&srv), &["client", "totals"]);
    let of = |ip: &str| {
        totals
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["client"] == ip)
            .cloned()
            .unwrap_or_else(|| panic!("{ip} in {totals:#}"))
    };
    let (busy, short) = (of("127.0.0.5"), of("127.0.0.6"));
    assert_eq!(
        (
            busy["connections_open"].as_u64(),
            busy["connections_closed"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(short["connections_open"], 0);
    assert!(short["connections_closed"].as_u64().unwrap() > 1, "{short}");
    assert_eq!(
        short["requests"].as_u64().unwrap(),
        short["connections_closed"].as_u64().unwrap(),
        "one MNT each: {short}"
    );
    drop(c);

    let bad = ctl_raw(&[
        std::ffi::OsStr::new("top"),
        std::ffi::OsStr::new("--count"),
        std::ffi::OsStr::new("0"),
    ]);
    bad.assert_failure();
}

// ---- in-process servers -----------------------------------------------------------------------

/// A server on a fault-injecting backend, in this process.
struct InProcess {
    export_dir: PathBuf,
    socket: PathBuf,
    addr: SocketAddr,
    faulty: Arc<FaultBackend>,
    // Dropped before the directory: the server stops first.
    _server: rnfs_server::Embedded,
    _dir: tempfile::TempDir,
}

impl InProcess {
    fn start(stall_bound_ms: u64) -> InProcess {
        let dir = tempfile::tempdir().unwrap();
        let export_dir = dir.path().join("export");
        std::fs::create_dir(&export_dir).unwrap();
        let key = rnfs_storage::handle::HandleKey::random().unwrap();
        let local = Arc::new(rnfs_storage::local::LocalFs::new(9, &export_dir, key).unwrap());
        let faulty = Arc::new(FaultBackend::new(local));
        let limits = rnfs_server::config::Limits {
            stall_bound_ms,
            ..Default::default()
        };
        let state_dir = dir.path().join("state");
        let server = rnfs_server::Embedded::start(
            faulty.clone(),
            9,
            "/export",
            export_dir.clone(),
            limits,
            state_dir.clone(),
        )
        .unwrap();
        InProcess {
            socket: state_dir.join("rnfsd.sock"),
            addr: server.addr(),
            export_dir,
            faulty,
            _server: server,
            _dir: dir,
        }
    }
}

/// A request still running when the server stops (a backend call that takes long) keeps the
/// graceful stop waiting; the runtime is idle but alive then, and the watchdog must not report it
/// stalled (its heartbeat used to stop first).
#[test]
fn a_slow_request_at_shutdown_is_no_runtime_stall() {
    let srv = InProcess::start(400);
    std::fs::write(srv.export_dir.join("slow"), vec![5u8; 4096]).unwrap();
    let mut c = tcp_client(srv.addr);
    let root = c.mount(b"/export").unwrap();
    let file = c.lookup(&root, b"slow").unwrap().object;
    srv.faulty.add_rule(Rule {
        op: Op::Read,
        action: Action::Delay(Duration::from_millis(2500)),
        times: Some(1),
    });
    let addr = srv.addr;
    let reader = std::thread::spawn(move || {
        let mut c = tcp_client(addr);
        c.set_timeout(Duration::from_secs(20)).unwrap();
        let _ = c.read(&file, 0, 4096);
    });
    wait_for(Duration::from_secs(2), "the READ in flight", || {
        ctl(&srv.socket, &["requests"])
            .as_array()?
            .iter()
            .any(|r| r["procedure"] == "NFS READ")
            .then_some(())
    });
    let watch = srv._server.running.watch.clone();
    let t0 = Instant::now();
    drop(srv);
    let stop_took = t0.elapsed();
    reader.join().unwrap();
    let reports = watch.reports();
    assert!(
        stop_took > Duration::from_millis(1000),
        "the stop waited for the READ: {stop_took:?}"
    );
    assert!(
        !reports.iter().any(|r| r.summary.contains("heartbeat")),
        "a runtime stall reported while stopping ({stop_took:?}): {reports:?}"
    );
}

#[test]
fn slow_read_shows_in_requests_with_a_growing_age() {
    let srv = InProcess::start(400);
    let data: Vec<u8> = (0..(64u32 << 10)).map(|i| (i % 253) as u8).collect();
    std::fs::write(srv.export_dir.join("slow"), &data).unwrap();
    let mut c = tcp_client(srv.addr);
    let root = c.mount(b"/export").unwrap();
    let file = c.lookup(&root, b"slow").unwrap().object;

    srv.faulty.add_rule(Rule {
        op: Op::Read,
        action: Action::Delay(Duration::from_millis(2500)),
        times: Some(1),
    });
    let addr = srv.addr;
    let reader = std::thread::spawn(move || {
        let mut c = tcp_client(addr);
        c.set_timeout(Duration::from_secs(20)).unwrap();
        let me = c.local_addr().unwrap();
        (me, c.read(&file, 0, 64 << 10).unwrap())
    });

    let find = |v: &Value| {
        v.as_array()?
            .iter()
            .find(|r| r["procedure"] == "NFS READ")
            .cloned()
    };
    // Once its worker is in the backend's `read` (not before: it is in flight from when it
    // was read off the socket), the request says so (see the server's backend_gate).
    let first = wait_for(
        Duration::from_secs(2),
        "the READ in the backend's read",
        || {
            find(&ctl(&srv.socket, &["requests"])).filter(|r| {
                r["waiting_on"]
                    .as_str()
                    .is_some_and(|w| w.starts_with("backend call read of export 9 ("))
            })
        },
    );
    assert_eq!(first["stage"], "fs", "{first}");
    assert_eq!(first["backend_call"]["call"], "read", "{first}");
    std::thread::sleep(Duration::from_millis(400));
    let second = find(&ctl(&srv.socket, &["requests"])).expect("still in flight");
    assert_eq!(second["xid"], first["xid"]);
    let (a0, a1) = (
        first["age_ms"].as_u64().unwrap(),
        second["age_ms"].as_u64().unwrap(),
    );
    assert!(a1 >= a0 + 350, "age grows: {a0} ms then {a1} ms");

    // The connection shows it in flight, and past the bound the watchdog's report is there too.
    let conns = ctl(&srv.socket, &["connections"]);
    assert!(
        conns.as_array().unwrap().iter().any(|c| c["in_fs"] == 1),
        "{conns:#}"
    );
    let stalls = wait_for(Duration::from_secs(3), "a stall report", || {
        let s = ctl(&srv.socket, &["stalls"]);
        s["reports"]
            .as_array()?
            .iter()
            .any(|r| {
                r["summary"]
                    .as_str()
                    .is_some_and(|t| t.contains("NFS READ"))
            })
            .then_some(s)
    });
    assert!(stalls["stalls_total"].as_u64().unwrap() >= 1);

    let (me, res) = reader.join().unwrap();
    assert_eq!(res.data.as_bytes(), &data[..]);
    // Done: gone from requests, and its latency is in the stats.
    wait_for(Duration::from_secs(5), "the READ to finish", || {
        find(&ctl(&srv.socket, &["requests"]))
            .is_none()
            .then_some(())
    });
    let stats = ctl(&srv.socket, &["stats"]);
    let read = stats["procedures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["procedure"] == "READ")
        .unwrap()
        .clone();
    assert!(
        read["latency_us"]["max"].as_u64().unwrap() >= 2_000_000,
        "the slow READ's latency: {read}"
    );
    let _ = me;
}

#[test]
fn locks_name_a_held_locks_holder_and_site() {
    let srv = InProcess::start(5000);
    let lock = Arc::new(rnfs_server::TrackedMutex::new("test.ctl.held", 0u32));
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let line = line!() + 1;
            let guard = lock.lock();
            held_tx.send((rnfs_server::thread_number(), line)).unwrap();
            let _ = release_rx.recv_timeout(Duration::from_secs(30));
            drop(guard);
        })
    };
    let (thread, line) = held_rx.recv().unwrap();
    // A second thread waits for it.
    let waiter = {
        let lock = lock.clone();
        std::thread::spawn(move || {
            let _g = lock.lock();
        })
    };

    let entry = |v: &Value| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == "test.ctl.held")
            .cloned()
            .expect("the lock is listed")
    };
    let held = wait_for(Duration::from_secs(5), "the waiter", || {
        let l = entry(&ctl(&srv.socket, &["locks"]));
        (l["waiters"] == 1).then_some(l)
    });
    assert_eq!(held["held"], true);
    assert_eq!(held["holder_thread"], thread);
    assert_eq!(
        held["site"],
        format!("{}:{line}", file!()).as_str(),
        "{held}"
    );
    // The table an admin reads.
    let human = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_rnfsd"))
            .args(["ctl", "--socket"])
            .arg(&srv.socket)
            .arg("locks"),
        CTL_TIMEOUT,
    );
    human.assert_success();
    let table = human.stdout_str();
    println!("{table}");
    let row = table
        .lines()
        .find(|l| l.starts_with("test.ctl.held"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("HELD")
            && row.contains(&format!("thread #{thread}"))
            && row.contains(&format!("ctl.rs:{line}")),
        "{row}"
    );
    std::thread::sleep(Duration::from_millis(200));
    let later = entry(&ctl(&srv.socket, &["locks"]));
    assert!(later["held_for_ms"].as_u64().unwrap() >= held["held_for_ms"].as_u64().unwrap() + 150);
    // The server's own locks are there too, free.
    let all = ctl(&srv.socket, &["locks"]);
    for name in [
        "service.exports",
        "registry.connections",
        "watchdog.reports",
    ] {
        assert!(
            all.as_array().unwrap().iter().any(|l| l["name"] == name),
            "{name} listed"
        );
    }

    release_tx.send(()).unwrap();
    holder.join().unwrap();
    waiter.join().unwrap();
    let released = entry(&ctl(&srv.socket, &["locks"]));
    assert_eq!(released["held"], false);
    assert_eq!(released["acquisitions"], 2);
}
