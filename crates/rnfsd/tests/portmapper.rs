//! Port 111 for real (RFC 1833 / RFC 1057): each test runs `rnfsd` in a network namespace of its
//! own (and a mount namespace with a private `/run`, where rpcbind keeps its socket and lock), so
//! it can own 127.0.0.1:111 without touching the machine's portmapper or other tests.
//!
//! * with a system rpcbind running, `rnfsd serve` (portmap `auto`, the default) registers NFS and
//!   MOUNT with it, a client that only knows the host name mounts and lists through it, and
//!   SIGTERM unregisters them;
//! * with no rpcbind, `--portmap on` serves port 111 itself, with the same results.
//!
//! Needs root (namespaces, port 111), `unshare` (util-linux), `ip` (iproute2), and Debian's
//! `rpcbind` (rpcbind and rpcinfo), which `scripts/test` installs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// The NFS program number (RFC 1813) and MOUNT's.
const NFS_PROGRAM: &str = "100003";
const MOUNT_PROGRAM: &str = "100005";

/// Runs `script` with bash in a new network and mount namespace, loopback up and a private
/// `/run`; the scratch directory's paths are in `$EXPORT`, `$STATE`, `$READY` and `$RNFSD`.
fn in_namespace(srv: &TestServer, script: &str) -> ToolOutput {
    let prelude = r#"
set -u
ip link set lo up
mount -t tmpfs -o size=8m tmpfs /run
mkdir -p /run/rpcbind
wait_ready() { for _ in $(seq 200); do [ -s "$READY" ] && return 0; sleep 0.05; done; echo "rnfsd not ready"; return 1; }
"#;
    let mut cmd = Command::new("unshare");
    cmd.args(["--net", "--mount", "--propagation", "private", "bash", "-c"])
        .arg(format!("{prelude}\n{script}"))
        .env("EXPORT", srv.export())
        .env("STATE", srv.state_dir())
        .env("READY", srv.scratch().join("ready-ns"))
        .env("RNFSD", env!("CARGO_BIN_EXE_rnfsd"));
    run_bounded(&mut cmd, Duration::from_secs(60))
}

/// The `rpcinfo -p` lines between the markers `== name` and the next `==`.
fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .skip_while(|l| *l != format!("== {name}"))
        .skip(1)
        .take_while(|l| !l.starts_with("=="))
        .collect()
}

/// Whether `rpcinfo -p` lines list `program` version `vers` over `proto` on `port`.
fn lists(lines: &[&str], program: &str, vers: &str, proto: &str, port: u16) -> bool {
    let port = port.to_string();
    lines.iter().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 4 && f[0] == program && f[1] == vers && f[2] == proto && f[3] == port
    })
}

fn setup() -> TestServer {
    require_root("namespaces and port 111");
    for tool in ["unshare", "ip", "rpcbind", "rpcinfo", "nfs-ls"] {
        assert!(
            Command::new("sh")
                .args(["-c", &format!("command -v {tool}")])
                .output()
                .unwrap()
                .status
                .success(),
            "{tool} is missing (scripts/test installs util-linux, iproute2, rpcbind, libnfs-utils)"
        );
    }
    let srv = TestServer::new();
    std::fs::write(srv.export().join("hello.txt"), b"hello\n").unwrap();
    srv
}

/// The port rnfsd reported in its ready file (`tcp ADDR` lines).
const PORT_OF_READY: &str = r#"PORT=$(sed -n 's/^tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$READY" | head -1); echo "port $PORT""#;

fn port_in(out: &str) -> u16 {
    out.lines()
        .find_map(|l| l.strip_prefix("port ")?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no port line in:\n{out}"))
}

#[test]
fn registers_with_a_system_rpcbind_and_unregisters_at_sigterm() {
    let srv = setup();
    let out = in_namespace(
        &srv,
        &format!(
            r#"
rpcbind -f -w & RPCB=$!
for _ in $(seq 100); do rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && break; sleep 0.05; done
"$RNFSD" serve "$EXPORT" --listen 127.0.0.1:0 --state-dir "$STATE" --ready-file "$READY" & R=$!
wait_ready || exit 1
{PORT_OF_READY}
echo "== registered"; rpcinfo -p 127.0.0.1
echo "== nfs-ls"; nfs-ls "nfs://127.0.0.1$EXPORT?version=3&uid=1000&gid=1000"
echo "== stop"; kill -TERM $R; wait $R; echo "rnfsd exit $?"
echo "== after"; rpcinfo -p 127.0.0.1
kill $RPCB
"#
        ),
    );
    let text = out.stdout_str();
    println!("{text}");
    let port = port_in(&text);
    let registered = section(&text, "registered");
    for (prog, vers) in [
        (NFS_PROGRAM, "3"),
        (MOUNT_PROGRAM, "3"),
        (MOUNT_PROGRAM, "1"),
    ] {
        for proto in ["tcp", "udp"] {
            assert!(
                lists(&registered, prog, vers, proto, port),
                "{prog} v{vers} {proto} on {port} not registered with rpcbind:\n{}",
                out.describe()
            );
        }
    }
    assert!(
        section(&text, "nfs-ls")
            .iter()
            .any(|l| l.contains("hello.txt")),
        "a client that only knows the host name lists the export through rpcbind:\n{}",
        out.describe()
    );
    assert!(
        text.contains("rnfsd exit 0"),
        "rnfsd exits 0 on SIGTERM:\n{}",
        out.describe()
    );
    let after = section(&text, "after");
    assert!(
        !after.is_empty()
            && !after
                .iter()
                .any(|l| l.contains(NFS_PROGRAM) || l.contains(MOUNT_PROGRAM)),
        "rnfsd unregisters at shutdown (rpcbind still answers, without NFS or MOUNT):\n{}",
        out.describe()
    );
}

#[test]
fn serves_port_111_itself_without_rpcbind() {
    let srv = setup();
    let out = in_namespace(
        &srv,
        &format!(
            r#"
"$RNFSD" serve "$EXPORT" --listen 127.0.0.1:0 --state-dir "$STATE" --ready-file "$READY" --portmap on & R=$!
wait_ready || exit 1
{PORT_OF_READY}
echo "== dump"; rpcinfo -p 127.0.0.1
echo "== getport"; rpcinfo -t 127.0.0.1 nfs 3; rpcinfo -u 127.0.0.1 mountd 3
echo "== nfs-ls"; nfs-ls "nfs://127.0.0.1$EXPORT?version=3&uid=1000&gid=1000"
echo "== stop"; kill -TERM $R; wait $R; echo "rnfsd exit $?"
"#
        ),
    );
    let text = out.stdout_str();
    println!("{text}");
    let port = port_in(&text);
    let dump = section(&text, "dump");
    assert!(
        lists(&dump, NFS_PROGRAM, "3", "tcp", port)
            && lists(&dump, MOUNT_PROGRAM, "3", "udp", port),
        "rnfsd's own portmapper on 111 lists NFS and MOUNT on {port}:\n{}",
        out.describe()
    );
    let getport = section(&text, "getport");
    assert_eq!(
        getport
            .iter()
            .filter(|l| l.contains("ready and waiting"))
            .count(),
        2,
        "rpcinfo reaches NFS over TCP and MOUNT over UDP through port 111:\n{}",
        out.describe()
    );
    assert!(
        section(&text, "nfs-ls")
            .iter()
            .any(|l| l.contains("hello.txt")),
        "a client that only knows the host name lists the export:\n{}",
        out.describe()
    );
    assert!(
        text.contains("rnfsd exit 0"),
        "rnfsd exits 0 on SIGTERM:\n{}",
        out.describe()
    );
}

// ---- who may change registrations ------------------------------------------------------------
// rnfsd's portmapper answers on every listener, the NFS port included, so these tests need no
// namespace: they attack it there with a raw ONC RPC client, as any local user could.

use std::net::SocketAddr;

use rnfs_client::portmap::{
    mapping, IPPROTO_TCP, PMAPPROC_SET, PMAPPROC_UNSET, PMAP_PROG, PMAP_VERS,
};
use rnfs_client::Client;

/// A program number from the range RFC 5531 §8.3 leaves to local use.
const PROG: u32 = 0x2000_1234;

/// A client of `srv`'s portmapper over TCP or UDP from 127.0.0.1, from a privileged source port
/// or an ephemeral one, with its socket created while this thread's fsuid is `owner` (the kernel
/// records that uid as the socket's owner).
fn caller(srv: &TestServer, udp: bool, privileged: bool, owner: u32) -> Client {
    let _as_owner = (owner != 0).then(|| rnfs_sys::set_thread_identity(owner, owner, &[]).unwrap());
    let mut last = None;
    for i in 0..200u16 {
        let port = if privileged {
            600 + (u16::try_from(std::process::id() % 400).unwrap() + i * 7) % 423
        } else {
            0
        };
        let local = SocketAddr::from(([127, 0, 0, 1], port));
        let c = if udp {
            Client::connect_udp_from(local, srv.udp_addr())
        } else {
            Client::connect_tcp_from(local, srv.tcp_addr())
        };
        match c {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
    }
    panic!("no free source port on 127.0.0.1: {last:?}");
}

fn change(c: &mut Client, proc_num: u32, vers: u32, port: u32) -> bool {
    let m = mapping {
        prog: PROG,
        vers,
        prot: IPPROTO_TCP,
        port,
    };
    c.call_decode(PMAP_PROG, PMAP_VERS, proc_num, &m).unwrap()
}

fn registered_port(srv: &TestServer, vers: u32) -> u32 {
    let mut c = Client::connect_tcp(srv.tcp_addr()).unwrap();
    c.portmap_getport(PROG, vers, IPPROTO_TCP).unwrap()
}

/// SET and UNSET from an unprivileged source port (what any local user has) are refused; a
/// privileged local caller registers, and only the registration's owner or root removes it.
#[test]
fn only_privileged_local_callers_change_registrations_and_only_owners_remove_them() {
    require_root("privileged source ports and another uid's sockets");
    let srv = TestServer::start_default();
    for udp in [false, true] {
        let mut anyone = caller(&srv, udp, false, 0);
        assert!(
            !change(&mut anyone, PMAPPROC_SET, 1, 4000),
            "SET from an unprivileged port was accepted (udp: {udp})"
        );
        assert_eq!(registered_port(&srv, 1), 0);
    }
    // Root from a privileged port registers version 1 (over TCP) and version 2 (over UDP).
    assert!(change(
        &mut caller(&srv, false, true, 0),
        PMAPPROC_SET,
        1,
        4001
    ));
    assert!(change(
        &mut caller(&srv, true, true, 0),
        PMAPPROC_SET,
        2,
        4002
    ));
    assert_eq!(
        (registered_port(&srv, 1), registered_port(&srv, 2)),
        (4001, 4002)
    );
    // Nobody without a privileged port removes it, over either transport.
    for udp in [false, true] {
        assert!(
            !change(&mut caller(&srv, udp, false, 0), PMAPPROC_UNSET, 1, 0),
            "UNSET from an unprivileged port was accepted (udp: {udp})"
        );
    }
    assert_eq!(
        registered_port(&srv, 1),
        4001,
        "another service's entry survives"
    );
    // A privileged caller running as uid 2000 cannot remove root's entry, but owns its own.
    let mut user = caller(&srv, false, true, 2000);
    assert!(
        !change(&mut user, PMAPPROC_UNSET, 1, 0),
        "uid 2000 removed root's entry"
    );
    assert_eq!(registered_port(&srv, 1), 4001);
    assert!(change(&mut user, PMAPPROC_SET, 3, 4003));
    assert_eq!(registered_port(&srv, 3), 4003);
    assert!(
        change(&mut user, PMAPPROC_UNSET, 3, 0),
        "the owner removes its own entry"
    );
    assert_eq!(registered_port(&srv, 3), 0);
    // Root removes anyone's.
    assert!(change(&mut user, PMAPPROC_SET, 3, 4003));
    assert!(change(
        &mut caller(&srv, true, true, 0),
        PMAPPROC_UNSET,
        3,
        0
    ));
    assert!(change(
        &mut caller(&srv, false, true, 0),
        PMAPPROC_UNSET,
        1,
        0
    ));
    assert_eq!((registered_port(&srv, 1), registered_port(&srv, 3)), (0, 0));
}
