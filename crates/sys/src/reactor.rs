//! Registering a socket with tokio's I/O driver for one direction of readiness only (see
//! rnfs-server's `transport::socket` for why).

use std::io;
use std::net::TcpStream;

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Registers `stream` with the current runtime's I/O driver for `interest` alone. Dropping the
/// result, or `AsyncFd::into_inner`, deregisters it. Must run in a runtime's context.
pub fn register_tcp(stream: TcpStream, interest: Interest) -> io::Result<AsyncFd<TcpStream>> {
    // SAFETY: a `TcpStream` owns its descriptor: it stays open, on the same socket, and
    // `as_raw_fd` names it, for as long as the stream lives, which is at least as long as the
    // `AsyncFd` that owns it (or until `into_inner` hands it back, deregistered).
    let registered = unsafe { AsyncFd::register_with_interest(stream, interest) };
    Ok(registered?)
}
