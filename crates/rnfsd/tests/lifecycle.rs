//! The `rnfsd serve` process contract: ready file, one port for TCP and UDP, IPv6, clean exit on
//! SIGTERM/SIGINT, restart on the same port, and a loud failure for a bad export. RPC messages here
//! are built by hand (a NULL call is 40 bytes), so these tests depend on nothing but the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

const NFS: u32 = 100_003;
const MOUNT: u32 = 100_005;
const PORTMAP: u32 = 100_000;

/// A NULL call with AUTH_NONE: xid, CALL, rpcvers 2, prog, vers, proc 0, cred, verf.
fn null_call(xid: u32, prog: u32, vers: u32) -> Vec<u8> {
    [xid, 0, 2, prog, vers, 0, 0, 0, 0, 0]
        .iter()
        .flat_map(|w| w.to_be_bytes())
        .collect()
}

/// Checks a reply to `null_call(xid, ..)`: REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS, and
/// nothing after (NULL returns void).
fn assert_null_success(reply: &[u8], xid: u32) {
    let words: Vec<u32> = reply
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        words,
        vec![xid, 1, 0, 0, 0, 0],
        "unexpected reply to NULL: {reply:02x?}"
    );
}

fn null_over_tcp(addr: SocketAddr, prog: u32, vers: u32) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let xid = 0x7000_0000 | prog;
    let call = null_call(xid, prog, vers);
    let mut rec = (0x8000_0000u32 | call.len() as u32).to_be_bytes().to_vec();
    rec.extend_from_slice(&call);
    s.write_all(&rec).unwrap();
    let mut mark = [0u8; 4];
    s.read_exact(&mut mark).unwrap();
    let mark = u32::from_be_bytes(mark);
    assert!(mark & 0x8000_0000 != 0, "reply not a single last fragment");
    let mut reply = vec![0u8; (mark & 0x7fff_ffff) as usize];
    s.read_exact(&mut reply).unwrap();
    assert_null_success(&reply, xid);
}

fn null_over_udp(addr: SocketAddr, prog: u32, vers: u32) {
    let local: SocketAddr = if addr.is_ipv4() {
        "127.0.0.1:0".parse().unwrap()
    } else {
        "[::1]:0".parse().unwrap()
    };
    let s = UdpSocket::bind(local).unwrap();
    s.connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let xid = 0x7100_0000 | prog;
    let call = null_call(xid, prog, vers);
    let mut buf = [0u8; 512];
    // UDP may drop: resend a few times, bounded.
    for _ in 0..10 {
        s.send(&call).unwrap();
        if let Ok(n) = s.recv(&mut buf) {
            assert_null_success(&buf[..n], xid);
            return;
        }
    }
    panic!("no UDP reply from {addr} to NULL of program {prog}");
}

#[test]
fn ready_file_reports_tcp_and_udp_on_one_port() {
    let srv = TestServer::start_default();
    let l = srv.listeners();
    assert_eq!(l.len(), 2, "{l:?}");
    let tcp = srv.tcp_addr();
    let udp = srv.udp_addr();
    assert_ne!(tcp.port(), 0);
    assert_eq!(tcp, udp, "TCP and UDP must share the chosen port");
    assert_eq!(tcp.ip().to_string(), "127.0.0.1");
    // Exact line format of the contract.
    let text = std::fs::read_to_string(srv.scratch().join("ready")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![format!("tcp {tcp}"), format!("udp {udp}")],
        "ready file: {text:?}"
    );
    // NFS, MOUNT and the portmapper all answer on that one port, on both transports.
    for (prog, vers) in [(NFS, 3), (MOUNT, 3), (MOUNT, 1), (PORTMAP, 2)] {
        null_over_tcp(tcp, prog, vers);
        null_over_udp(udp, prog, vers);
    }
}

#[test]
fn listens_on_ipv4_and_ipv6_loopback() {
    let mut srv = TestServer::new().listen(&["127.0.0.1:0", "[::1]:0"]);
    srv.start();
    let l = srv.listeners().to_vec();
    assert_eq!(l.len(), 4, "{l:?}");
    let text = std::fs::read_to_string(srv.scratch().join("ready")).unwrap();
    let v6: Vec<_> = l.iter().filter(|x| x.addr.is_ipv6()).collect();
    assert_eq!(v6.len(), 2, "{text}");
    let p6 = v6[0].addr.port();
    assert!(
        text.lines().any(|x| x == format!("tcp [::1]:{p6}")),
        "{text}"
    );
    assert!(
        text.lines().any(|x| x == format!("udp [::1]:{p6}")),
        "{text}"
    );
    for x in &l {
        match x.proto {
            Proto::Tcp => null_over_tcp(x.addr, NFS, 3),
            Proto::Udp => null_over_udp(x.addr, NFS, 3),
        }
    }
}

#[test]
fn exits_cleanly_on_sigterm_and_sigint() {
    for (name, sig) in [("SIGTERM", libc::SIGTERM), ("SIGINT", libc::SIGINT)] {
        let mut srv = TestServer::start_default();
        // With a connection open, so shutdown does not wait for idle clients forever.
        let _conn = TcpStream::connect(srv.tcp_addr()).unwrap();
        null_over_tcp(srv.tcp_addr(), NFS, 3);
        let t = Instant::now();
        let status = srv.stop_with(sig);
        let took = t.elapsed();
        assert!(
            status.is_some_and(|s| s.success()),
            "{name}: exit status {status:?} after {took:?}\n{}",
            srv.log_tail()
        );
        eprintln!("{name}: clean exit in {took:.2?}");
    }
}

#[test]
fn restart_keeps_the_port_and_answers_again() {
    let mut srv = TestServer::start_default();
    let before = srv.tcp_addr();
    null_over_tcp(before, NFS, 3);
    let t = Instant::now();
    srv.restart();
    eprintln!("restart took {:.2?}", t.elapsed());
    assert_eq!(srv.tcp_addr(), before);
    null_over_tcp(srv.tcp_addr(), NFS, 3);
    null_over_udp(srv.udp_addr(), NFS, 3);
}

#[test]
fn missing_export_directory_fails_loudly() {
    let scratch = tempfile::tempdir().unwrap();
    let missing = scratch.path().join("does-not-exist");
    let out = serve_once(scratch.path(), &[missing.as_os_str()]);
    assert!(
        !out.success(),
        "serving a missing directory should fail: {}",
        out.describe()
    );
    assert!(
        out.stderr.contains("does-not-exist"),
        "the error should name the directory: {}",
        out.describe()
    );
}

/// Runs `rnfsd serve WHAT...` on a free loopback port with its state in `scratch`, expecting it
/// to stop by itself (a start that fails); checks that no ready file was written.
fn serve_once(scratch: &std::path::Path, what: &[&std::ffi::OsStr]) -> ToolOutput {
    let ready = scratch.join("ready");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_rnfsd"));
    cmd.arg("serve")
        .args(what)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--state-dir")
        .arg(scratch.join("state"))
        .arg("--ready-file")
        .arg(&ready)
        .arg("--portmap")
        .arg("off");
    let out = run_bounded(&mut cmd, Duration::from_secs(20));
    assert!(
        !ready.exists(),
        "ready file written although serving failed"
    );
    out
}

/// Runs `serve --config` with `toml` (the export is a fresh directory); returns its output.
fn serve_config_once(toml: &str) -> ToolOutput {
    let scratch = tempfile::tempdir().unwrap();
    let export = scratch.path().join("export");
    std::fs::create_dir(&export).unwrap();
    let config = scratch.path().join("rnfsd.toml");
    let text = format!("[[export]]\npath = \"{}\"\n{toml}", export.display());
    std::fs::write(&config, text).unwrap();
    serve_once(scratch.path(), &["--config".as_ref(), config.as_os_str()])
}

/// Limits that used to hang every request (`fs_workers_max = 0`), panic every connection task
/// (`connection_requests_max = 0`) or make FSINFO advertise sizes the WRITE decoder refuses
/// (`transfer_bytes_max` above 1 MiB) stop the server at start, naming the key.
#[test]
fn bad_limits_stop_the_server_at_start_naming_the_key() {
    for (limit, expect) in [
        ("fs_workers_max = 0", "limits.fs_workers_max = 0"),
        (
            "connection_requests_max = 0",
            "limits.connection_requests_max = 0",
        ),
        (
            "transfer_bytes_max = 4194304",
            "limits.transfer_bytes_max = 4194304",
        ),
        (
            "transfer_bytes_max = 1048576\nrecord_bytes_max = 1048576",
            "limits.record_bytes_max = 1048576",
        ),
    ] {
        let out = serve_config_once(&format!(
            "[[export.client]]\nmatch = \"127.0.0.1\"\n[limits]\n{limit}\n"
        ));
        assert!(
            !out.success() && out.stderr.contains(expect),
            "{limit}: the server should refuse to start, naming {expect:?}: {}",
            out.describe()
        );
    }
}

/// An IPv4-mapped client network shorter than /96 would cover more than IPv4 clients: refused at
/// start with a clear error (it used to compute a wrong mask, or panic in a debug build).
#[test]
fn mapped_ipv4_networks_shorter_than_96_bits_are_refused() {
    let out = serve_config_once("[[export.client]]\nmatch = \"::ffff:127.0.0.0/64\"\n");
    assert!(
        !out.success() && out.stderr.contains("::ffff:127.0.0.0/64") && out.stderr.contains("96"),
        "the server should refuse the rule and say why: {}",
        out.describe()
    );
}
