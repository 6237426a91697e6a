//! Who owns a local socket: the uid the kernel records for each socket in `/proc/net/{tcp,udp}{,6}`
//! (the `uid` column, `sock_i_uid`: the file-system uid of the process that created it).
//!
//! rnfsd's portmapper uses it the way rpcbind uses `SO_PEERCRED` on its local socket: a call that
//! arrives over loopback comes from a socket on this host, so the kernel's table names the user
//! behind it, and a registration can remember its owner (RFC 1833 §3.2 leaves access control to
//! the implementation). Reading these files needs no privilege and no `unsafe`.
//!
//! The files are read only for the rare calls that change registrations, never on a hot path.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The transport a socket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketKind {
    Tcp,
    Udp,
}

/// `st` of an established TCP socket in `/proc/net/tcp` (`TCP_ESTABLISHED`).
const TCP_ESTABLISHED: u8 = 1;
/// Most lines read from one table: a host with more sockets than this is answered "unknown"
/// rather than read without bound.
const TABLE_LINES_MAX: usize = 1 << 20;

/// The uid owning the local socket bound to `addr` (a loopback peer's address as the server saw
/// it), or `None` when no socket or sockets of different owners match. For TCP the socket must be
/// connected with `addr` as its own address; for UDP it may be bound to `addr` or to the wildcard
/// address with `addr`'s port.
pub fn local_socket_owner(kind: SocketKind, addr: SocketAddr) -> io::Result<Option<u32>> {
    let files: [&str; 2] = match kind {
        SocketKind::Tcp => ["/proc/self/net/tcp", "/proc/self/net/tcp6"],
        SocketKind::Udp => ["/proc/self/net/udp", "/proc/self/net/udp6"],
    };
    let mut owners = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(file) {
            Ok(t) => t,
            // A kernel without IPv6 has no `tcp6`.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        owners.extend(owners_in_table(&text, kind, addr));
    }
    owners.sort_unstable();
    owners.dedup();
    Ok(match owners[..] {
        [uid] => Some(uid),
        _ => None,
    })
}

/// The uids of the sockets in one `/proc/net` table that match `addr` (see
/// [`local_socket_owner`]). Malformed lines are skipped.
pub fn owners_in_table(text: &str, kind: SocketKind, addr: SocketAddr) -> Vec<u32> {
    let want = addr.ip().to_canonical();
    text.lines()
        .skip(1)
        .take(TABLE_LINES_MAX)
        .filter_map(parse_line)
        .filter(|s| s.local.port() == addr.port())
        .filter(|s| match kind {
            SocketKind::Tcp => s.state == TCP_ESTABLISHED && s.local.ip().to_canonical() == want,
            SocketKind::Udp => {
                let ip = s.local.ip().to_canonical();
                ip == want || ip.is_unspecified()
            }
        })
        .map(|s| s.uid)
        .collect()
}

/// One socket of a table.
struct Entry {
    local: SocketAddr,
    state: u8,
    uid: u32,
}

/// `sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid ...`
fn parse_line(line: &str) -> Option<Entry> {
    let mut fields = line.split_whitespace();
    let _slot = fields.next()?;
    let local = parse_addr(fields.next()?)?;
    let _remote = fields.next()?;
    let state = u8::from_str_radix(fields.next()?, 16).ok()?;
    let uid = fields.nth(3)?.parse().ok()?;
    Some(Entry { local, state, uid })
}

/// `0100007F:0801` (IPv4) or 32 hex digits and a port (IPv6). The kernel prints each 32-bit word
/// of the address as the number it is in memory, so the bytes come back with `to_ne_bytes`.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0801 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0100007F:0258 0100007F:0801 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0 20 4 30 10 -1
   2: 0100007F:0801 0100007F:0258 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0 20 4 30 10 -1
   garbage line
";

    #[test]
    fn finds_the_owner_of_a_connected_tcp_socket() {
        let peer: SocketAddr = "127.0.0.1:600".parse().unwrap();
        assert_eq!(owners_in_table(TCP, SocketKind::Tcp, peer), vec![1000]);
        // The server's own end (local 127.0.0.1:2049) is not the peer's socket.
        let server: SocketAddr = "127.0.0.1:2049".parse().unwrap();
        assert_eq!(owners_in_table(TCP, SocketKind::Tcp, server), vec![0]);
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:600".parse().unwrap();
        assert_eq!(owners_in_table(TCP, SocketKind::Tcp, mapped), vec![1000]);
    }

    #[test]
    fn udp_matches_wildcard_bound_sockets_by_port() {
        let udp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  7: 00000000:0259 00000000:0000 07 00000000:00000000 00:00000000 00000000    33        0 9 2 0 0
";
        let peer: SocketAddr = "127.0.0.1:601".parse().unwrap();
        assert_eq!(owners_in_table(udp, SocketKind::Udp, peer), vec![33]);
        assert!(owners_in_table(udp, SocketKind::Tcp, peer).is_empty());
    }

    #[test]
    fn parses_ipv6_addresses() {
        // ::1 port 0x0801, as the kernel prints it on a little-endian machine.
        let line = "   0: 00000000000000000000000001000000:0801 00000000000000000000000000000000:0000 01 00000000:00000000 00:00000000 00000000  4321        0 5 1 0 20 4 30 10 -1";
        let e = parse_line(line).unwrap();
        if cfg!(target_endian = "little") {
            assert_eq!(e.local, "[::1]:2049".parse().unwrap());
        }
        assert_eq!((e.state, e.uid), (1, 4321));
    }

    /// This process's own loopback connection is found with this process's uid.
    #[test]
    fn finds_this_processes_own_socket() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (_server, peer) = listener.accept().unwrap();
        assert_eq!(peer, client.local_addr().unwrap());
        // /proc/self belongs to this process's uid.
        let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
        assert_eq!(local_socket_owner(SocketKind::Tcp, peer).unwrap(), Some(me));
    }
}
