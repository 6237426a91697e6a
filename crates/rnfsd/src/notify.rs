//! systemd's readiness protocol (sd_notify(3)), in safe Rust: one datagram per state change to
//! the Unix socket `$NOTIFY_SOCKET` names, which systemd sets for a `Type=notify` service.
//! Without that variable (not started by systemd) nothing is sent.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Where state changes go.
pub(crate) struct Notifier {
    socket: UnixDatagram,
    to: SocketAddr,
}

impl Notifier {
    /// The notifier `$NOTIFY_SOCKET` names: a path, or `@name` for an abstract socket. `None`
    /// when it is unset, or unusable (then logged: systemd will time the start out).
    pub(crate) fn from_env() -> Option<Notifier> {
        let name = std::env::var_os("NOTIFY_SOCKET")?;
        match Self::open(&name) {
            Ok(n) => Some(n),
            Err(e) => {
                tracing::warn!(socket = ?name, error = %e, "NOTIFY_SOCKET is unusable: systemd will not hear that rnfsd is ready");
                None
            }
        }
    }

    fn open(name: &std::ffi::OsStr) -> std::io::Result<Notifier> {
        use std::os::unix::ffi::OsStrExt;
        let bytes = name.as_bytes();
        let to = match bytes.split_first() {
            Some((b'@', abstract_name)) => SocketAddr::from_abstract_name(abstract_name)?,
            Some((b'/', _)) => SocketAddr::from_pathname(name)?,
            _ => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::Unsupported,
                    "neither a path nor an @abstract name",
                ))
            }
        };
        let socket = UnixDatagram::unbound()?;
        // Sent from the reactor: a full receive queue must drop a notice, never block it.
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, to })
    }

    /// Sends `state` (newline-separated `KEY=VALUE` lines, e.g. `READY=1`). A failure is logged
    /// and otherwise ignored: serving matters more than telling systemd.
    pub(crate) fn send(&self, state: &str) {
        // Never blocks (non-blocking socket); a notice systemd has no room for is logged.
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.to) {
            tracing::warn!(error = %e, state, "cannot notify systemd");
        }
    }

    /// `RELOADING=1` with the time it started, as systemd asks of a service that reloads.
    pub(crate) fn reloading(&self) {
        match rnfs_sys::monotonic_usec() {
            Ok(usec) => self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}")),
            Err(_) => self.send("RELOADING=1"),
        }
    }
}

/// `STATUS=` text: one line, as `systemctl status` shows it.
pub(crate) fn status_line(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    format!("STATUS={line}")
}
