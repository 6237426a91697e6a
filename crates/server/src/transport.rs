//! TCP and UDP transports: the only place sockets meet the service.
//!
//! # Liveness rules (see also the crate docs)
//! * One task owns each connection's write half (the *writer*); request tasks hand it finished
//!   replies over a bounded channel. Nobody else writes, so no lock guards the socket.
//! * The *reader* stops reading when the connection's in-flight limit is reached (backpressure),
//!   instead of queueing requests without bound.
//! * Request handling (decode, file-system calls, encode) runs on the blocking worker pool, gated by
//!   a global semaphore, never on a reactor thread.
//! * Closing a connection never waits for its sends: the reader just returns; the writer ends when
//!   its channel closes or the socket fails, and dropping a queued reply is O(1).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tracing::{debug, info, warn};

use rnfs_oncrpc::record::RecordReader;

use crate::registry::{Stage, Tracked};
use crate::service::{Origin, Outcome, Reply, Service, Tail, Transport};

/// Identifies connections and UDP sockets (the owners of loans) for the life of the process.
static NEXT_CONN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_conn_id() -> u64 {
    NEXT_CONN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Milliseconds since the process's first call: the one clock the transports read and hand to the
/// service.
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

const ZERO_PAD: [u8; 3] = [0; 3];

/// Read buffer growth step for TCP connections.
const READ_CHUNK_BYTES: usize = 64 << 10;
/// Largest UDP datagram we accept (the IPv4 maximum payload).
pub const UDP_DATAGRAM_BYTES_MAX: usize = 65_507;

/// State shared by every transport task.
pub struct Shared {
    pub service: Arc<Service>,
    /// Gates the blocking worker pool: one permit per request being processed.
    pub workers: Arc<Semaphore>,
    /// One permit per open TCP connection.
    pub connections: Arc<Semaphore>,
    /// Live connections and their requests in flight.
    pub registry: Arc<crate::registry::Registry>,
}

/// Runs `service.handle_record` on the worker pool. Returns the reply, or `None` when the message
/// gets no reply.
async fn process(
    shared: &Shared,
    record: Bytes,
    origin: Origin,
    tracked: Option<&Tracked>,
) -> Option<Reply> {
    // Closed only at shutdown, when dropping the request is right.
    let _permit = shared.workers.clone().acquire_owned().await.ok()?;
    if let Some(t) = tracked {
        t.set_stage(Stage::Fs);
    }
    let service = shared.service.clone();
    let now = now_ms();
    let job = tokio::task::spawn_blocking(move || {
        let mut reply = Reply::new();
        match service.handle_record(record, origin, now, &mut reply) {
            Outcome::Reply => Some(reply),
            Outcome::Drop => None,
        }
    });
    match job.await {
        Ok(reply) => {
            if let Some(t) = tracked {
                t.set_stage(Stage::Sending);
            }
            reply
        }
        Err(e) => {
            // A panic in a handler is a bug; the connection survives and the client retransmits.
            warn!(peer = %origin.peer, error = %e, "request handler failed");
            None
        }
    }
}

/// Sends one reply as one record: head, then the tail (from a buffer or spliced from its loan),
/// then XDR padding. The loan, if any, is returned (dropped) when this returns, sent or not.
async fn send_reply(wr: &mut OwnedWriteHalf, mut reply: Reply) -> std::io::Result<()> {
    let marker = rnfs_oncrpc::record::single_fragment_marker(reply.message_len());
    reply.head[..Reply::MARKER_BYTES].copy_from_slice(&marker);
    let pad = rnfs_xdr::pad_len(reply.tail_len());
    match std::mem::replace(&mut reply.tail, Tail::None) {
        Tail::None => wr.write_all(&reply.head).await,
        Tail::Bytes(data) => {
            let mut all = reply.head.chain(data).chain(&ZERO_PAD[..pad]);
            wr.write_all_buf(&mut all).await
        }
        Tail::Spliced { mut loan, len } => {
            wr.write_all(&reply.head).await?;
            let stream: &TcpStream = wr.as_ref();
            let mut left = len;
            while left > 0 {
                stream.writable().await?;
                let moved = stream.try_io(Interest::WRITABLE, || {
                    loan.with_resource(|pipe| match pipe {
                        Some(p) => p.0.drain_to(std::os::fd::AsFd::as_fd(stream), left),
                        None => Err(std::io::Error::other("loan without a pipe")),
                    })
                });
                match moved {
                    Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                    Ok(n) => left -= n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => return Err(e),
                }
            }
            wr.write_all(&ZERO_PAD[..pad]).await
        }
    }
}

/// Accepts TCP connections until the listener fails or the task is cancelled.
pub async fn serve_tcp(listener: TcpListener, shared: Arc<Shared>) {
    let local = listener.local_addr().ok();
    loop {
        // Past the connection limit we stop accepting; the kernel backlog holds the rest.
        let Ok(permit) = shared.connections.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection(stream, peer, shared).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: back off briefly rather than spin.
                warn!(?local, error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    debug!(%peer, "connection opened");
    let limits = shared.service.limits().clone();
    let (mut rd, mut wr) = stream.into_split();
    let origin = Origin {
        peer,
        transport: Transport::Tcp,
        conn_id: next_conn_id(),
    };
    let conn = shared.registry.open(
        origin.conn_id,
        peer,
        Transport::Tcp,
        limits.connection_requests_max,
        now_ms(),
    );
    let (reply_tx, mut reply_rx) =
        mpsc::channel::<(Reply, Option<Tracked>)>(limits.connection_requests_max);
    let in_flight = Arc::new(Semaphore::new(limits.connection_requests_max));

    // The writer: the only task that writes to this socket.
    tokio::spawn(async move {
        while let Some((reply, tracked)) = reply_rx.recv().await {
            let bytes = (Reply::MARKER_BYTES + reply.message_len()) as u64;
            let sent = send_reply(&mut wr, reply).await;
            if let Some(t) = &tracked {
                t.connection()
                    .bytes_out
                    .fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
            }
            drop(tracked);
            if let Err(e) = sent {
                debug!(%peer, error = %e, "write failed; dropping queued replies");
                return;
            }
        }
    });

    let mut reader = RecordReader::new(limits.record_bytes_max, limits.record_fragments_max);
    let mut input = BytesMut::with_capacity(READ_CHUNK_BYTES);
    loop {
        loop {
            match reader.next_record(&mut input) {
                Ok(Some(record)) => {
                    let Ok(permit) = in_flight.clone().acquire_owned().await else {
                        return;
                    };
                    let record_bytes = (record.len() + 4) as u64;
                    conn.bytes_in
                        .fetch_add(record_bytes, std::sync::atomic::Ordering::Relaxed);
                    let tracked = conn.track(&record, now_ms());
                    let shared = shared.clone();
                    let tx = reply_tx.clone();
                    tokio::spawn(async move {
                        let reply = process(&shared, record, origin, tracked.as_ref()).await;
                        if let Some(reply) = reply {
                            // Fails only when the writer is gone: the connection is closing.
                            let _ = tx.send((reply, tracked)).await;
                        }
                        drop(permit);
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    warn!(%peer, error = %e, "closing connection: bad record");
                    return;
                }
            }
        }
        if input.capacity() - input.len() < 4096 {
            input.reserve(READ_CHUNK_BYTES);
        }
        match rd.read_buf(&mut input).await {
            Ok(0) => {
                debug!(%peer, "connection closed by peer");
                return;
            }
            Ok(_) => {}
            Err(e) => {
                debug!(%peer, error = %e, "read failed; closing");
                return;
            }
        }
    }
}

/// Serves RPC over one UDP socket until the task is cancelled.
pub async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    let conn_id = next_conn_id();
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // UDP requests in flight are bounded by the worker pool; twice that leaves room for replies
    // being sent.
    let conn = shared.registry.open(
        conn_id,
        local,
        Transport::Udp,
        shared.service.limits().fs_workers_max * 2,
        now_ms(),
    );
    let mut buf = vec![0u8; UDP_DATAGRAM_BYTES_MAX + 1];
    loop {
        let (len, peer) = match socket.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                warn!(error = %e, "UDP receive failed");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                continue;
            }
        };
        if len > UDP_DATAGRAM_BYTES_MAX {
            debug!(%peer, "dropping oversized datagram");
            continue;
        }
        let record = Bytes::copy_from_slice(&buf[..len]);
        conn.bytes_in
            .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
        let tracked = conn.track(&record, now_ms());
        let shared = shared.clone();
        let socket = socket.clone();
        tokio::spawn(async move {
            let origin = Origin {
                peer,
                transport: Transport::Udp,
                conn_id,
            };
            let reply = process(&shared, record, origin, tracked.as_ref()).await;
            if let Some(reply) = reply {
                // One datagram: the tail (never spliced over UDP) is joined to the head.
                let mut datagram = BytesMut::from(&reply.head[Reply::MARKER_BYTES..]);
                if let Tail::Bytes(data) = &reply.tail {
                    datagram.extend_from_slice(data);
                    datagram.extend_from_slice(&ZERO_PAD[..rnfs_xdr::pad_len(data.len())]);
                }
                if let Err(e) = socket.send_to(&datagram, peer).await {
                    debug!(%peer, error = %e, "UDP send failed");
                }
            }
        });
    }
}

/// Binds TCP and UDP on `addr`. With port 0, one free port is chosen for both.
pub async fn bind_pair(addr: SocketAddr) -> std::io::Result<(TcpListener, UdpSocket)> {
    let mut last_err = None;
    for _ in 0..16 {
        let tcp = TcpListener::bind(addr).await?;
        let bound = tcp.local_addr()?;
        match UdpSocket::bind(bound).await {
            Ok(udp) => {
                info!(tcp = %bound, "listening");
                return Ok((tcp, udp));
            }
            // Another socket owns that UDP port: with a fixed port that is final, with port 0 we
            // try another pair.
            Err(e) if addr.port() == 0 => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| std::io::Error::other("no free port pair")))
}
