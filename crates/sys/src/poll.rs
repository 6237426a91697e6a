//! Reading a socket from a thread outside the async runtime: waiting for it to become readable
//! with a bounded timeout (`ppoll(2)`), and receiving what it holds without blocking.
//!
//! The server's in-place path uses these while a thread that ran a call in place waits briefly
//! for the same connection's next call (see rnfs-server's `transport::tcp`, "Lingering").

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

use bytes::{BufMut, BytesMut};

/// Waits up to `timeout_us` microseconds for `fd` to have data to read (or an error, or its peer's
/// end of stream: a read then says which). `Ok(false)` on timeout; an interrupting signal also
/// ends the wait early with `Ok(false)`.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_us: u64) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN | libc::POLLRDHUP,
        revents: 0,
    };
    let timeout = libc::timespec {
        tv_sec: (timeout_us / 1_000_000) as libc::time_t,
        tv_nsec: ((timeout_us % 1_000_000) * 1_000) as libc::c_long,
    };
    // SAFETY: `pfd` is one valid pollfd for the duration of the call (count 1); `timeout` is a
    // valid timespec; a null signal mask leaves the thread's mask as it is.
    let n = unsafe { libc::ppoll(&mut pfd, 1, &timeout, std::ptr::null()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// `recv(2)` with `MSG_DONTWAIT` into `buf`'s spare capacity, which the caller reserves
/// (`InvalidInput` when there is none, as `Ok(0)` would be mistaken for the end of stream).
/// `Ok(0)` is the peer's end of stream; `WouldBlock` means nothing is there now.
pub fn recv_into(fd: BorrowedFd<'_>, buf: &mut BytesMut) -> io::Result<usize> {
    let spare = buf.spare_capacity_mut();
    if spare.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no room to receive into",
        ));
    }
    // SAFETY: the kernel writes at most `spare.len()` bytes into memory `buf` owns and has not
    // initialised (writing to uninitialised bytes is allowed); `fd` is a borrowed, open socket.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            spare.as_mut_ptr().cast::<libc::c_void>(),
            spare.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    // SAFETY: the kernel initialised exactly the first `n` bytes of the spare capacity.
    unsafe { buf.advance_mut(n) };
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;

    #[test]
    fn waits_then_receives_what_arrived() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        let mut buf = BytesMut::with_capacity(64);
        assert!(
            !wait_readable(b.as_fd(), 1_000).unwrap(),
            "nothing sent yet"
        );
        let e = recv_into(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock, "never blocks");
        a.write_all(b"hello").unwrap();
        assert!(wait_readable(b.as_fd(), 1_000_000).unwrap());
        assert_eq!(recv_into(b.as_fd(), &mut buf).unwrap(), 5);
        assert_eq!(&buf[..], b"hello");
        drop(a);
        assert!(
            wait_readable(b.as_fd(), 1_000_000).unwrap(),
            "end of stream is readable"
        );
        assert_eq!(recv_into(b.as_fd(), &mut buf).unwrap(), 0);
    }

    #[test]
    fn a_full_buffer_reads_nothing() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        a.write_all(b"x").unwrap();
        let mut buf = BytesMut::new();
        let e = recv_into(b.as_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(buf.is_empty());
        buf.reserve(8);
        assert!(wait_readable(b.as_fd(), 1_000_000).unwrap());
        assert_eq!(recv_into(b.as_fd(), &mut buf).unwrap(), 1, "still there");
    }
}
