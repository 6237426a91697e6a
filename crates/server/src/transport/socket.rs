//! One TCP connection's socket, known to the runtime's I/O driver through two descriptors of it:
//! the receiving side's for readability only, the sending side's (a `dup`) for writability only.
//!
//! Why two: while a thread lingers on a connection after a call in place (see
//! `tcp::Reader::linger`), it waits for the next call itself (`ppoll`). Were the socket still
//! registered for readability, every call arriving then would also wake the driver's thread, for
//! nothing: two wake-ups per call where one does. So the receiving side leaves the driver for
//! the lingering ([`RecvSocket::park`], one `epoll_ctl`) and comes back after it
//! ([`RecvSocket::unpark`]), while the sending side stays registered for the writer, which
//! waits only when replies fill the socket. Registered for writability alone, the sending side's
//! descriptor is not woken by incoming data (epoll matches events against each registration's
//! interest).
//!
//! Cost: one more descriptor per connection (`connections_max` of them at most).

use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::task::{Context, Poll, Waker};

use bytes::BytesMut;
use rnfs_sys::reactor::register_tcp as register;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Splits an accepted connection into its receiving and sending sides.
pub fn split(stream: tokio::net::TcpStream) -> io::Result<(RecvSocket, SendSocket)> {
    // Leaves the driver (it was registered for both directions) and stays non-blocking.
    let recv = stream.into_std()?;
    let send = recv.try_clone()?;
    Ok((
        RecvSocket {
            state: Recv::Registered(register(recv, Interest::READABLE)?),
        },
        SendSocket {
            io: register(send, Interest::WRITABLE)?,
        },
    ))
}

/// The side of a connection the reader reads, registered with the driver unless parked.
pub struct RecvSocket {
    state: Recv,
}

enum Recv {
    Registered(AsyncFd<std::net::TcpStream>),
    /// Out of the driver's hands: only a thread that polls it itself sees data arrive.
    Parked(std::net::TcpStream),
    /// Registering again failed; every read fails.
    Lost,
}

impl RecvSocket {
    /// Reads what the socket has into `input` (at least one byte, or 0 at end of stream). Cancel
    /// safe. Fails if the socket is parked.
    ///
    /// A read that does not fill `input`'s spare room emptied the socket's receive queue, so the
    /// readiness is cleared right away instead of by one more `recv` that would only say `EAGAIN`:
    /// one system call less per request. Data arriving after the read is a new readiness event,
    /// which clearing does not lose (the clear names the event it saw).
    pub async fn read_some(&self, input: &mut BytesMut) -> io::Result<usize> {
        let Recv::Registered(io) = &self.state else {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "socket parked"));
        };
        loop {
            let mut ready = io.readable().await?;
            let spare = input.capacity() - input.len();
            match rnfs_sys::poll::recv_into(io.get_ref().as_fd(), input) {
                Ok(n) => {
                    if n > 0 && n < spare {
                        ready.clear_ready();
                    }
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => ready.clear_ready(),
                Err(e) => return Err(e),
            }
        }
    }

    /// Takes the socket out of the driver: from now on arriving data wakes only a thread that
    /// polls it. No-op if it already is.
    pub fn park(&mut self) {
        let state = std::mem::replace(&mut self.state, Recv::Lost);
        self.state = match state {
            Recv::Registered(io) => Recv::Parked(io.into_inner()),
            other => other,
        };
    }

    /// Gives the socket back to the driver (data that arrived meanwhile is reported at once).
    /// No-op if it is registered.
    pub fn unpark(&mut self) -> io::Result<()> {
        let state = std::mem::replace(&mut self.state, Recv::Lost);
        self.state = match state {
            Recv::Parked(s) => Recv::Registered(register(s, Interest::READABLE)?),
            Recv::Lost => return Err(io::Error::other("socket lost to a failed registration")),
            registered => registered,
        };
        Ok(())
    }

    /// The descriptor, for a thread that polls and reads it itself.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.state {
            Recv::Registered(io) => Some(io.get_ref().as_fd()),
            Recv::Parked(s) => Some(s.as_fd()),
            Recv::Lost => None,
        }
    }
}

/// The side of a connection replies are written to, registered for writability only.
pub struct SendSocket {
    io: AsyncFd<std::net::TcpStream>,
}

impl SendSocket {
    /// Writes what the socket takes of `slices` without blocking (`WouldBlock` when full).
    pub fn try_write_vectored(&self, slices: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.attempt(|s| (&mut &*s).write_vectored(slices))
    }

    /// Runs `send`, a non-blocking write to the descriptor; a `WouldBlock` from it marks the
    /// socket full until the driver says otherwise.
    pub fn try_send_with(
        &self,
        send: impl FnOnce(BorrowedFd<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.attempt(|s| send(s.as_fd()))
    }

    /// Runs the write `op`, whether or not the driver has reported the socket writable yet.
    ///
    /// Why not `AsyncFd::try_io` alone: a fresh registration is not known writable until the
    /// driver next polls, so `try_io` would refuse a connection's first reply and hand it to the
    /// writer task (a wake-up for nothing). Where readiness is known, the write runs under its
    /// guard, so a `WouldBlock` clears exactly the event it saw and none that came after (which
    /// edge-triggered epoll would not report again). Where it is not, nothing is set that a
    /// `WouldBlock` should clear; the writer then waits for the driver as usual.
    fn attempt(
        &self,
        op: impl FnOnce(&std::net::TcpStream) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.io.poll_write_ready(&mut cx) {
            Poll::Ready(Ok(mut ready)) => match ready.try_io(|io| op(io.get_ref())) {
                Ok(result) => result,
                Err(_would_block) => Err(io::ErrorKind::WouldBlock.into()),
            },
            // Not known writable (or the driver is gone): the system call says which.
            _ => op(self.io.get_ref()),
        }
    }

    /// Waits until the socket may take more.
    pub async fn writable(&self) -> io::Result<()> {
        self.io.writable().await.map(drop)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A connected pair: a client stream and the server's two sides of it.
    pub(crate) async fn pair() -> (tokio::net::TcpStream, RecvSocket, SendSocket) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = tokio::net::TcpStream::connect(l.local_addr().unwrap())
            .await
            .unwrap();
        let (b, _) = l.accept().await.unwrap();
        let (recv, send) = split(b).unwrap();
        (a, recv, send)
    }

    /// Data that arrives while parked is read after unparking, without another arrival to wake
    /// the reader; writes go on while parked.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parked_data_is_seen_after_unparking() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, mut recv, send) = pair().await;
        recv.park();
        let mut buf = BytesMut::with_capacity(64);
        assert!(recv.read_some(&mut buf).await.is_err(), "parked: no reads");
        client.write_all(b"while parked").await.unwrap();
        let fd = recv.fd().unwrap();
        assert!(rnfs_sys::poll::wait_readable(fd, 5_000_000).unwrap());
        assert_eq!(
            send.try_write_vectored(&[io::IoSlice::new(b"reply")])
                .unwrap(),
            5
        );
        let mut got = [0; 5];
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"reply");
        recv.unpark().unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), recv.read_some(&mut buf))
            .await
            .expect("data that arrived while parked is reported")
            .unwrap();
        assert_eq!(&buf[..n], b"while parked");
        // And the next arrival wakes the registered reader again.
        client.write_all(b"after").await.unwrap();
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), recv.read_some(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(&buf[..], b"while parkedafter");
    }

    /// A connection's first reply goes out before the driver has reported the socket writable;
    /// once the socket is full, the writer's wait really waits (a stale readiness would make it
    /// spin) and ends when the client reads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_write_goes_out_and_a_full_socket_is_waited_for() {
        use tokio::io::AsyncReadExt;
        let (mut client, _recv, send) = pair().await;
        assert_eq!(
            send.try_write_vectored(&[io::IoSlice::new(b"x")]).unwrap(),
            1
        );
        let chunk = vec![0u8; 1 << 16];
        let mut sent = 1;
        loop {
            match send.try_write_vectored(&[io::IoSlice::new(&chunk)]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => panic!("{e}"),
            }
            assert!(sent < 1 << 30, "loopback buffers are not a GiB");
        }
        let wait = std::time::Duration::from_millis(100);
        assert!(
            tokio::time::timeout(wait, send.writable()).await.is_err(),
            "a full socket is not writable"
        );
        let mut sink = vec![0u8; sent];
        client.read_exact(&mut sink).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), send.writable())
            .await
            .expect("writable once the client has read")
            .unwrap();
    }
}
