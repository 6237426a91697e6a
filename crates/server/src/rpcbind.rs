//! Registration with a system portmapper/rpcbind on 127.0.0.1:111 (RFC 1833 §3, version 2).
//!
//! At start we UNSET then SET our programs (a stale registration from a crashed run would make a
//! plain SET fail); at shutdown we UNSET them. Calls go over UDP with a short timeout from a
//! blocking thread, so a dead portmapper delays start-up by at most that timeout.

use std::net::UdpSocket;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rnfs_oncrpc::{decode_reply, encode_call, OpaqueAuth, ReplyHeader};
use rnfs_portmap as pmap;
use rnfs_xdr::XdrEncode;
use tracing::debug;

use crate::service::OwnPorts;

const CALL_TIMEOUT: Duration = Duration::from_millis(500);

/// The (program, version) pairs we register.
const PROGRAMS: &[(u32, u32)] = &[
    (crate::nfs::NFS_PROGRAM, 3),
    // MOUNT answers versions 1 to 3, as our own portmapper lists them.
    (rnfs_mount::MOUNT_PROG, 1),
    (rnfs_mount::MOUNT_PROG, 2),
    (rnfs_mount::MOUNT_PROG, 3),
];

fn call(proc_num: u32, m: &pmap::mapping) -> Option<Bytes> {
    let sock = UdpSocket::bind("127.0.0.1:0").ok()?;
    sock.set_read_timeout(Some(CALL_TIMEOUT)).ok()?;
    sock.connect(("127.0.0.1", pmap::PMAP_PORT)).ok()?;
    let xid = std::process::id() ^ (proc_num << 24) ^ m.prog ^ (m.vers << 8) ^ m.prot;
    let mut msg = BytesMut::new();
    encode_call(
        &mut msg,
        xid,
        pmap::PMAP_PROG,
        pmap::PMAP_VERS,
        proc_num,
        &OpaqueAuth::none(),
    );
    m.encode(&mut msg);
    sock.send(&msg).ok()?;
    let mut buf = vec![0u8; 512];
    let n = sock.recv(&mut buf).ok()?;
    buf.truncate(n);
    match decode_reply(Bytes::from(buf)) {
        Ok((rx, ReplyHeader::Success, body)) if rx == xid => Some(body),
        other => {
            debug!(?other, "unexpected portmapper reply");
            None
        }
    }
}

fn set(proc_num: u32, m: &pmap::mapping) -> bool {
    call(proc_num, m).is_some_and(|b| b.len() == 4 && b[3] == 1)
}

/// Registers NFS and MOUNT over TCP and UDP. Returns false when no portmapper answered (a refused
/// registration is logged, and still counts as answered so that shutdown unregisters).
pub fn register_all(ports: OwnPorts) -> bool {
    // Probe first: no answer means no portmapper (or not one that will talk to us).
    let probe = pmap::mapping {
        prog: pmap::PMAP_PROG,
        vers: pmap::PMAP_VERS,
        prot: pmap::IPPROTO_UDP,
        port: 0,
    };
    if call(pmap::PMAPPROC_GETPORT, &probe).is_none() {
        return false;
    }
    for &(prog, vers) in PROGRAMS {
        let _ = set(
            pmap::PMAPPROC_UNSET,
            &pmap::mapping {
                prog,
                vers,
                prot: 0,
                port: 0,
            },
        );
        for (prot, port) in [
            (pmap::IPPROTO_TCP, ports.tcp),
            (pmap::IPPROTO_UDP, ports.udp),
        ] {
            let m = pmap::mapping {
                prog,
                vers,
                prot,
                port: u32::from(port),
            };
            if !set(pmap::PMAPPROC_SET, &m) {
                tracing::warn!(prog, vers, prot, "portmapper refused our registration");
            }
        }
    }
    true
}

/// Removes our registrations.
pub fn unregister_all(_ports: OwnPorts) {
    for &(prog, vers) in PROGRAMS {
        let _ = set(
            pmap::PMAPPROC_UNSET,
            &pmap::mapping {
                prog,
                vers,
                prot: 0,
                port: 0,
            },
        );
    }
}
