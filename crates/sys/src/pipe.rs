//! Pipes and `splice(2)`: moving file pages to a socket without copying them through user space.
//!
//! The zero-copy READ path splices file data into a pipe first (the pipe then holds references to
//! the page-cache pages: the "loan"), learns from that how many bytes it has, writes the reply
//! header, and splices the pipe into the socket. Both pipe ends are non-blocking: the producer never
//! puts more into a pipe than its capacity, and the consumer waits for socket readiness in the
//! async runtime instead of in the kernel.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use crate::{cvt, cvt_long, is_eintr, owned};

/// A pipe used to hold spliced file pages.
#[derive(Debug)]
pub struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    capacity_bytes: usize,
}

impl Pipe {
    /// Creates a non-blocking pipe holding up to `capacity_bytes` (rounded up by the kernel to a
    /// power-of-two number of pages). If the kernel refuses that size (`fs.pipe-max-size`), the
    /// pipe keeps the largest size it accepted, at least its default 64 KiB.
    pub fn new(capacity_bytes: usize) -> io::Result<Pipe> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) })?;
        let (read, write) = (owned(fds[0]), owned(fds[1]));
        let mut want = capacity_bytes.max(4096);
        let capacity_bytes = loop {
            // SAFETY: F_SETPIPE_SZ takes an int argument; the fd is a pipe we own.
            let r =
                unsafe { libc::fcntl(write.as_raw_fd(), libc::F_SETPIPE_SZ, want as libc::c_int) };
            if r >= 0 {
                break r as usize;
            }
            let err = io::Error::last_os_error();
            if want <= 64 << 10
                || !matches!(err.raw_os_error(), Some(libc::EPERM) | Some(libc::EBUSY))
            {
                // SAFETY: F_GETPIPE_SZ takes no argument; the fd is a pipe we own.
                let cur = cvt(unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) })?;
                break cur as usize;
            }
            want /= 2;
        };
        Ok(Pipe {
            read,
            write,
            capacity_bytes,
        })
    }

    /// How many bytes the pipe can hold.
    pub fn capacity_bytes(&self) -> usize {
        self.capacity_bytes
    }

    /// Bytes currently in the pipe.
    pub fn len_bytes(&self) -> io::Result<usize> {
        let mut n: libc::c_int = 0;
        // SAFETY: FIONREAD writes one int through the pointer, which is valid.
        cvt(unsafe { libc::ioctl(self.read.as_raw_fd(), libc::FIONREAD, &mut n) })?;
        Ok(n as usize)
    }

    pub fn read_end(&self) -> BorrowedFd<'_> {
        self.read.as_fd()
    }

    /// Splices up to `len` bytes of `file` at `offset` into the pipe, looping until `len` bytes
    /// are in, the file ends, or the pipe is full. Returns the bytes moved. May block on disk I/O:
    /// call it from a worker thread.
    pub fn fill_from_file(
        &self,
        file: BorrowedFd<'_>,
        offset: u64,
        len: usize,
    ) -> io::Result<usize> {
        let mut moved = 0usize;
        let mut off = offset as libc::loff_t;
        while moved < len {
            // SAFETY: valid fds; `off` is a valid loff_t the kernel advances; null out-offset
            // because the output is a pipe.
            let r = unsafe {
                libc::splice(
                    file.as_raw_fd(),
                    &mut off,
                    self.write.as_raw_fd(),
                    std::ptr::null_mut(),
                    len - moved,
                    libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE,
                )
            };
            match cvt_long(r as libc::c_long) {
                Ok(0) => break,
                Ok(n) => moved += n as usize,
                Err(e) if is_eintr(&e) => continue,
                // The pipe is full: what is in it is what we send.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && moved > 0 => break,
                Err(e) => return Err(e),
            }
        }
        Ok(moved)
    }

    /// Moves up to `len` bytes from the pipe to `socket` without blocking. Returns the bytes moved;
    /// `WouldBlock` means the socket is full (wait for it to be writable and call again).
    ///
    /// `more`: more of the same record follows this call's bytes. Only then may the kernel hold
    /// back a partial last segment (`SPLICE_F_MORE`); otherwise the end of the record would wait
    /// for the peer's next acknowledgement before leaving.
    pub fn drain_to(&self, socket: BorrowedFd<'_>, len: usize, more: bool) -> io::Result<usize> {
        let mut flags = libc::SPLICE_F_NONBLOCK | libc::SPLICE_F_MOVE;
        if more {
            flags |= libc::SPLICE_F_MORE;
        }
        loop {
            // SAFETY: valid fds; null offsets because both ends are a pipe and a socket.
            let r = unsafe {
                libc::splice(
                    self.read.as_raw_fd(),
                    std::ptr::null_mut(),
                    socket.as_raw_fd(),
                    std::ptr::null_mut(),
                    len,
                    flags,
                )
            };
            match cvt_long(r as libc::c_long) {
                Ok(n) => return Ok(n as usize),
                Err(e) if is_eintr(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// Empties the pipe (after an aborted send), so it can be reused. Copies what is left into a
    /// scratch buffer: this runs only on the reaper, off every request's path.
    pub fn clear(&self) -> io::Result<()> {
        let mut scratch = [0u8; 16 << 10];
        loop {
            // SAFETY: `scratch` is a valid writable buffer of the given length.
            let r = unsafe {
                libc::read(
                    self.read.as_raw_fd(),
                    scratch.as_mut_ptr().cast(),
                    scratch.len(),
                )
            };
            match cvt_long(r as libc::c_long) {
                Ok(0) => return Ok(()),
                Ok(_) => continue,
                Err(e) if is_eintr(&e) => continue,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}

/// Writes `bufs` to the non-blocking stream `socket` in one `sendmsg(2)` with `MSG_MORE`: the
/// bytes are the start of a record whose rest is spliced next, so the kernel may put them in the
/// same segment as the spliced pages instead of sending them alone (with `TCP_NODELAY` a plain
/// write would). Returns the bytes written; `WouldBlock` when the socket is full.
pub fn send_more(socket: BorrowedFd<'_>, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
    let mut msg: libc::msghdr = empty_msghdr();
    msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = bufs.len();
    loop {
        // SAFETY: `msg` points at `bufs`, whose `IoSlice`s are ABI-compatible with `iovec` (a
        // documented guarantee on Unix) and stay borrowed for the call; the kernel only reads them.
        let r = unsafe {
            libc::sendmsg(
                socket.as_raw_fd(),
                &msg,
                libc::MSG_MORE | libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        match cvt_long(r as libc::c_long) {
            Ok(n) => return Ok(n as usize),
            Err(e) if is_eintr(&e) => continue,
            Err(e) => return Err(e),
        }
    }
}

fn empty_msghdr() -> libc::msghdr {
    // SAFETY: `msghdr` is a plain C struct for which all-zero bytes are a valid (empty) value.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;

    #[test]
    fn file_to_pipe_to_socket() {
        let mut f = tempfile::tempfile().unwrap();
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        f.write_all(&data).unwrap();
        let pipe = Pipe::new(1 << 20).unwrap();
        assert!(pipe.capacity_bytes() >= 64 << 10);
        let want = data.len().min(pipe.capacity_bytes()) - 1000;
        let n = pipe.fill_from_file(f.as_fd(), 1000, want).unwrap();
        assert_eq!(n, want);
        assert_eq!(pipe.len_bytes().unwrap(), n);

        let (a, mut b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = vec![0u8; n];
            b.read_exact(&mut got).unwrap();
            got
        });
        let mut sent = 0;
        while sent < n {
            match pipe.drain_to(a.as_fd(), n - sent, false) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::yield_now(),
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(reader.join().unwrap(), &data[1000..1000 + n]);
    }

    #[test]
    fn eof_and_clear() {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(b"short").unwrap();
        let pipe = Pipe::new(64 << 10).unwrap();
        assert_eq!(pipe.fill_from_file(f.as_fd(), 2, 100).unwrap(), 3);
        assert_eq!(
            pipe.fill_from_file(f.as_fd(), 5, 100).unwrap(),
            0,
            "at EOF nothing moves"
        );
        pipe.clear().unwrap();
        assert_eq!(pipe.len_bytes().unwrap(), 0);
    }

    #[test]
    fn pages_stay_loaned_across_truncate() {
        // Pages in the pipe keep the record length fixed even if the file shrinks meanwhile: the
        // bytes may read as zero past the new end, but there are exactly as many as were spliced.
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&vec![0xabu8; 64 << 10]).unwrap();
        let pipe = Pipe::new(64 << 10).unwrap();
        let n = pipe.fill_from_file(f.as_fd(), 0, 64 << 10).unwrap();
        f.set_len(0).unwrap();
        assert_eq!(pipe.len_bytes().unwrap(), n);
    }
}
