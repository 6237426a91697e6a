//! The portmapper, version 2 (RFC 1833 §3), as every rnfsd listener answers it: GETPORT and DUMP
//! for anyone, SET and UNSET only for privileged local callers, each registration owned by the
//! uid behind the caller's socket. CALLIT is not served. The table [`PORTMAP`] maps procedure
//! numbers to the handlers here (see [`crate::program`]).

use super::*;
use crate::call::{reply_header, Call, Outcome, Reply, Transport};
use crate::program::{handler, null, Procedure, Program};
use rnfs_oncrpc::ReplyHeader;

/// The (program, version) pairs every listener answers, as our portmapper lists them (and, but
/// the portmapper, what `rpcbind` registers with a system portmapper).
pub(crate) const OWN_PROGRAMS: &[(u32, u32)] = &[
    (pmap::PMAP_PROG, pmap::PMAP_VERS),
    (crate::nfs::NFS_PROGRAM, 3),
    (rnfs_mount::MOUNT_PROG, 1),
    (rnfs_mount::MOUNT_PROG, 2),
    (rnfs_mount::MOUNT_PROG, 3),
    (rnfs_nlm::NLM_PROG, rnfs_nlm::NLM4_VERS),
    (rnfs_nlm::nsm::SM_PROG, rnfs_nlm::nsm::SM_VERS),
];

/// Registrations kept by our portmapper.
const PORTMAP_ENTRIES_MAX: usize = 1024;
/// Source ports below this are privileged: binding one needs root or `CAP_NET_BIND_SERVICE`.
const PRIVILEGED_PORT_END: u16 = 1024;
/// The uid that may unset any registration (rpcbind's "superuser").
const SUPERUSER_UID: u32 = 0;

/// Finds the uid owning a loopback caller's socket (see [`rnfs_sys::sockets`]); `None` when the
/// kernel names no single owner. A plain function so tests can stand in for the kernel's table.
pub type SocketOwner = fn(Transport, SocketAddr) -> Option<u32>;

pub(super) fn kernel_socket_owner(transport: Transport, peer: SocketAddr) -> Option<u32> {
    let kind = match transport {
        Transport::Tcp => rnfs_sys::sockets::SocketKind::Tcp,
        Transport::Udp => rnfs_sys::sockets::SocketKind::Udp,
    };
    rnfs_sys::sockets::local_socket_owner(kind, peer)
        .map_err(|e| warn!(%peer, error = %e, "cannot read the kernel's socket table"))
        .ok()
        .flatten()
}

/// A registration in our portmapper and the uid that made it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Registration {
    mapping: pmap::mapping,
    owner: u32,
}

/// The portmapper, version 2. SET and UNSET change the registrations; like MOUNT, their replies
/// are not cached (the cache is for NFS, whose clients retransmit). No reply has a status word.
pub(crate) const PORTMAP: Program = Program {
    prog: pmap::PMAP_PROG,
    name: "PORTMAP",
    low: pmap::PMAP_VERS,
    high: pmap::PMAP_VERS,
    procedures: &[
        Procedure::new(pmap::PMAPPROC_NULL, "NULL", handler!(null)),
        Procedure::new(pmap::PMAPPROC_SET, "SET", handler!(Service::pmap_set)).modifies(),
        Procedure::new(pmap::PMAPPROC_UNSET, "UNSET", handler!(Service::pmap_unset)).modifies(),
        Procedure::new(
            pmap::PMAPPROC_GETPORT,
            "GETPORT",
            handler!(Service::pmap_getport),
        ),
        Procedure::new(pmap::PMAPPROC_DUMP, "DUMP", handler!(Service::pmap_dump)),
        Procedure::new(
            pmap::PMAPPROC_CALLIT,
            "CALLIT",
            handler!(into Service::pmap_callit),
        ),
    ],
    stats_any_version: true,
    tcp_only: false,
};

impl Service {
    fn pmap_set(&self, call: &Call, m: pmap::mapping) -> Result<bool, AuthStat> {
        Ok(self
            .registrar(call)
            .is_some_and(|uid| self.portmap_set(m, uid)))
    }

    fn pmap_unset(&self, call: &Call, m: pmap::mapping) -> Result<bool, AuthStat> {
        Ok(self
            .registrar(call)
            .is_some_and(|uid| self.portmap_unset(m, uid)))
    }

    fn pmap_getport(&self, _: &Call, m: pmap::mapping) -> Result<u32, AuthStat> {
        Ok(u32::from(self.getport(&m)))
    }

    fn pmap_dump(&self, _: &Call, (): ()) -> Result<pmap::pmaplist, AuthStat> {
        Ok(pmap::List(self.portmap_dump()))
    }

    /// CALLIT would let anyone bounce traffic off us (an amplifier); we do not forward. Its
    /// arguments are still decoded first, so garbage gets GARBAGE_ARGS as before.
    fn pmap_callit(
        &self,
        call: &Call,
        _: pmap::call_args,
        reply: &mut Reply,
    ) -> Result<Outcome, AuthStat> {
        Ok(reply_header(
            &mut reply.head,
            call.header.xid,
            ReplyHeader::ProcUnavail,
        ))
    }

    /// Who may change registrations, as rpcbind decides for a caller over IP: only a process on
    /// this host (a loopback source address) that holds a privileged source port, so no ordinary
    /// user can register or remove a service. The kernel's socket table names the caller's uid,
    /// which a registration remembers as its owner. `None`: refused.
    fn registrar(&self, call: &Call) -> Option<u32> {
        let ip = call.peer.ip().to_canonical();
        if !ip.is_loopback() || call.peer.port() >= PRIVILEGED_PORT_END {
            debug!(peer = %call.peer, "portmapper change refused: not a privileged local caller");
            return None;
        }
        let owner = (self.socket_owner)(call.transport, call.peer);
        if owner.is_none() {
            debug!(peer = %call.peer, "portmapper change refused: caller's socket owner unknown");
        }
        owner
    }

    fn own_mappings(&self) -> Vec<pmap::mapping> {
        let ports = self.own_ports();
        let mut v = Vec::new();
        for (prot, port) in [
            (pmap::IPPROTO_TCP, ports.tcp),
            (pmap::IPPROTO_UDP, ports.udp),
        ] {
            if port == 0 {
                continue;
            }
            for &(prog, vers) in OWN_PROGRAMS {
                v.push(pmap::mapping {
                    prog,
                    vers,
                    prot,
                    port: u32::from(port),
                });
            }
        }
        v
    }

    fn getport(&self, m: &pmap::mapping) -> u16 {
        let matches = |x: &pmap::mapping| x.prog == m.prog && x.vers == m.vers && x.prot == m.prot;
        if let Some(x) = self.own_mappings().iter().find(|x| matches(x)) {
            return x.port as u16;
        }
        let reg = self.portmap.lock();
        reg.iter()
            .find(|x| matches(&x.mapping))
            .map_or(0, |x| x.mapping.port as u16)
    }

    fn portmap_dump(&self) -> Vec<pmap::mapping> {
        let mut v = self.own_mappings();
        v.extend(self.portmap.lock().iter().map(|r| r.mapping));
        v
    }

    fn portmap_set(&self, m: pmap::mapping, owner: u32) -> bool {
        if self
            .own_mappings()
            .iter()
            .any(|x| x.prog == m.prog && x.vers == m.vers && x.prot == m.prot)
        {
            return false;
        }
        let mut reg = self.portmap.lock();
        // RFC 1833: SET fails if the (prog, vers, prot) is already registered.
        if reg.len() >= PORTMAP_ENTRIES_MAX
            || reg.iter().any(|x| {
                let x = &x.mapping;
                x.prog == m.prog && x.vers == m.vers && x.prot == m.prot
            })
        {
            return false;
        }
        reg.push(Registration { mapping: m, owner });
        true
    }

    /// Removes `m`'s program and version (UNSET ignores prot and port, RFC 1833 §3.2) where the
    /// caller owns the registration or is the superuser; true if anything was removed.
    fn portmap_unset(&self, m: pmap::mapping, caller: u32) -> bool {
        let mut reg = self.portmap.lock();
        let before = reg.len();
        reg.retain(|x| {
            let same = x.mapping.prog == m.prog && x.mapping.vers == m.vers;
            !(same && (caller == x.owner || caller == SUPERUSER_UID))
        });
        reg.len() != before
    }
}
