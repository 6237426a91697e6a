//! Registration with a system portmapper/rpcbind on 127.0.0.1:111 (RFC 1833 §3, version 2).
//!
//! At start we UNSET then SET our programs (a stale registration from a crashed run would make a
//! plain SET fail); at shutdown we UNSET them. Calls go over UDP with a short timeout from a
//! blocking thread, so a dead portmapper delays start-up by at most that timeout. As root they
//! leave from a privileged source port, which portmappers that guard their table (rpcbind `-L`,
//! rnfsd's own) require of a caller over IP.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rnfs_oncrpc::{decode_reply, encode_call, OpaqueAuth, ReplyHeader};
use rnfs_portmap as pmap;
use rnfs_xdr::XdrEncode;
use tracing::debug;

use crate::service::OwnPorts;

const CALL_TIMEOUT: Duration = Duration::from_millis(500);
/// The system portmapper: loopback, its well-known port.
const SYSTEM_PORTMAPPER: SocketAddr = SocketAddr::new(
    std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    pmap::PMAP_PORT,
);
/// The privileged source ports tried (as `bindresvport(3)` does), and how many at most.
const RESERVED_PORTS: std::ops::Range<u16> = 600..1024;
const RESERVED_PORT_TRIES: u16 = 32;

/// The (program, version) pairs we register: what our own portmapper lists
/// (`service::OWN_PROGRAMS`) but the portmapper itself, and NSM only when `nsm` (no other status
/// monitor has it).
fn programs(nsm: bool) -> impl Iterator<Item = (u32, u32)> {
    crate::service::OWN_PROGRAMS
        .iter()
        .copied()
        .filter(move |&(prog, _)| prog != pmap::PMAP_PROG && (nsm || prog != NSM.0))
}

/// A loopback UDP socket, on a privileged port when we may bind one.
fn socket() -> Option<UdpSocket> {
    if crate::running_as_root() {
        let span = RESERVED_PORTS.end - RESERVED_PORTS.start;
        let start = (std::process::id() % u32::from(span)) as u16;
        for i in 0..RESERVED_PORT_TRIES {
            let port = RESERVED_PORTS.start + (start + i) % span;
            if let Ok(sock) = UdpSocket::bind(("127.0.0.1", port)) {
                return Some(sock);
            }
        }
    }
    UdpSocket::bind("127.0.0.1:0").ok()
}

fn call(portmapper: SocketAddr, proc_num: u32, m: &pmap::mapping) -> Option<Bytes> {
    let sock = socket()?;
    sock.set_read_timeout(Some(CALL_TIMEOUT)).ok()?;
    sock.connect(portmapper).ok()?;
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

fn set(portmapper: SocketAddr, proc_num: u32, m: &pmap::mapping) -> bool {
    call(portmapper, proc_num, m).is_some_and(|b| b.len() == 4 && b[3] == 1)
}

/// What the system portmapper made of our registrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// Nothing answered on port 111.
    NoPortmapper,
    /// A portmapper answered: it accepted `accepted` of `tried` SETs. `statd`: another process
    /// (the host's `rpc.statd`) serves NSM, so we did not register it and use that one.
    Answered {
        accepted: usize,
        tried: usize,
        statd: bool,
    },
}

/// NSM version 1, registered only when no other status monitor is.
const NSM: (u32, u32) = (rnfs_nlm::nsm::SM_PROG, rnfs_nlm::nsm::SM_VERS);

/// Whether another process has NSM registered with `portmapper` (a non-zero UDP port).
fn statd_registered(portmapper: SocketAddr) -> bool {
    let m = pmap::mapping {
        prog: NSM.0,
        vers: NSM.1,
        prot: pmap::IPPROTO_UDP,
        port: 0,
    };
    call(portmapper, pmap::PMAPPROC_GETPORT, &m)
        .is_some_and(|b| b.len() == 4 && b.iter().any(|&x| x != 0))
}

/// Registers NFS and MOUNT over TCP and UDP, and says how many SETs the portmapper accepted.
pub fn register_all(ports: OwnPorts) -> Registered {
    register_with(SYSTEM_PORTMAPPER, ports)
}

fn register_with(portmapper: SocketAddr, ports: OwnPorts) -> Registered {
    // Probe first: no answer means no portmapper (or not one that will talk to us).
    let probe = pmap::mapping {
        prog: pmap::PMAP_PROG,
        vers: pmap::PMAP_VERS,
        prot: pmap::IPPROTO_UDP,
        port: 0,
    };
    if call(portmapper, pmap::PMAPPROC_GETPORT, &probe).is_none() {
        return Registered::NoPortmapper;
    }
    let statd = statd_registered(portmapper);
    let (mut accepted, mut tried) = (0, 0);
    for (prog, vers) in programs(!statd) {
        let _ = set(
            portmapper,
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
            tried += 1;
            if set(portmapper, pmap::PMAPPROC_SET, &m) {
                accepted += 1;
            } else {
                debug!(prog, vers, prot, "portmapper refused a registration");
            }
        }
    }
    Registered::Answered {
        accepted,
        tried,
        statd,
    }
}

/// Removes our registrations (NSM's too when it was ours).
pub fn unregister_all(_ports: OwnPorts, nsm_ours: bool) {
    for (prog, vers) in programs(nsm_ours) {
        let _ = set(
            SYSTEM_PORTMAPPER,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A portmapper on an ephemeral loopback port that answers GETPORT and refuses every SET (as
    /// one that guards its table refuses a caller it does not trust), for `calls` calls.
    fn refusing_portmapper(calls: usize) -> (SocketAddr, std::thread::JoinHandle<Vec<u32>>) {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = sock.local_addr().unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let server = std::thread::spawn(move || {
            let mut procs = Vec::new();
            let mut buf = [0u8; 512];
            for _ in 0..calls {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    break;
                };
                let word = |i: usize| u32::from_be_bytes(buf[i * 4..i * 4 + 4].try_into().unwrap());
                assert!(n >= 24);
                procs.push(word(5));
                // xid, REPLY, MSG_ACCEPTED, AUTH_NONE verifier, SUCCESS, then FALSE (or port 0).
                let reply: Vec<u8> = [word(0), 1, 0, 0, 0, 0, 0]
                    .iter()
                    .flat_map(|w| w.to_be_bytes())
                    .collect();
                sock.send_to(&reply, from).unwrap();
            }
            procs
        });
        (addr, server)
    }

    /// A portmapper that answers but refuses every SET is reported as such, not as "registered".
    #[test]
    fn refused_registrations_are_counted() {
        // UNSET, SET over TCP, SET over UDP.
        let per_program = 3;
        // No status monitor is registered (GETPORT answers 0): NSM is registered too.
        let programs = programs(true).count();
        assert_eq!(programs, programs_without_nsm() + 1);
        let (addr, server) = refusing_portmapper(2 + per_program * programs);
        let ports = OwnPorts {
            tcp: 2049,
            udp: 2049,
        };
        let got = register_with(addr, ports);
        let procs = server.join().unwrap();
        assert_eq!(
            got,
            Registered::Answered {
                accepted: 0,
                tried: 2 * programs,
                statd: false,
            }
        );
        assert_eq!(procs[..2], [pmap::PMAPPROC_GETPORT; 2]);
        let sets = procs.iter().filter(|p| **p == pmap::PMAPPROC_SET).count();
        assert_eq!(sets, 2 * programs);
    }

    fn programs_without_nsm() -> usize {
        programs(false).count()
    }

    #[test]
    fn silence_is_no_portmapper() {
        // A bound socket that never answers.
        let quiet = UdpSocket::bind("127.0.0.1:0").unwrap();
        let ports = OwnPorts { tcp: 1, udp: 1 };
        assert_eq!(
            register_with(quiet.local_addr().unwrap(), ports),
            Registered::NoPortmapper
        );
    }
}
