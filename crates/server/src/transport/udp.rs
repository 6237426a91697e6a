//! RPC over UDP: one datagram, one call, one reply datagram (no record marking). Admission is by
//! the server-wide request semaphore only: with every slot busy a datagram is dropped (the client
//! retransmits). Requests reach the worker pool by the same path as TCP's (`super::hand_off`).

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;
use tokio::sync::OwnedSemaphorePermit;
use tracing::{debug, warn};

use rnfs_oncrpc::peek::CallPeek;

use super::{count, fit_reply, hand_off, next_conn_id, wait_for_reply_memory, Shared};
use crate::call::{Origin, Reply, Tail, Transport};
use crate::clock::now_ms;
use crate::registry::{Stage, Tracked};
use crate::reply_memory::{reply_bytes_estimate, ReplyCharge};

const ZERO_PAD: [u8; 3] = [0; 3];
/// Most UDP requests per socket the registry tracks at once.
const UDP_TRACKED_MAX: usize = 256;
/// Largest UDP datagram we accept (the IPv4 maximum payload).
pub const UDP_DATAGRAM_BYTES_MAX: usize = 65_507;

/// One admitted call and what it holds until its reply is sent.
struct Call {
    record: Bytes,
    origin: Origin,
    tracked: Option<Tracked>,
    /// Reply memory it needs (see `fit_reply`).
    want: usize,
    /// Its slot among the server's requests in flight.
    global: OwnedSemaphorePermit,
}

/// Serves RPC over one UDP socket until the task is cancelled.
pub async fn serve_udp(socket: UdpSocket, shared: Arc<Shared>) {
    let socket = Arc::new(socket);
    let conn_id = next_conn_id();
    let local = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // Requests over UDP are bounded by `requests_in_flight_max`; the registry tracks up to
    // UDP_TRACKED_MAX of them per socket (the rest run untracked).
    let conn = shared.registry.open(
        conn_id,
        local,
        Transport::Udp,
        shared
            .service
            .limits()
            .requests_in_flight_max
            .min(UDP_TRACKED_MAX),
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
        // Bounded work: with every request slot busy, drop the datagram (the client retransmits)
        // rather than queue tasks without limit.
        let Ok(global) = shared.requests.clone().try_acquire_owned() else {
            count(&shared.service.counters.udp_datagrams_dropped);
            debug!(%peer, "server busy: dropping a UDP request");
            continue;
        };
        let record = Bytes::copy_from_slice(&buf[..len]);
        conn.bytes_in
            .fetch_add(len as u64, std::sync::atomic::Ordering::Relaxed);
        let call = CallPeek::parse(&record).ok();
        let tracked = conn.track(&record, call.as_ref(), now_ms());
        // Reply memory first, twice over: the reply and its datagram (see `fit_reply`).
        let payload = Transport::Udp.payload_bytes_max(shared.service.limits());
        let want = 2 * reply_bytes_estimate(call.as_ref(), payload);
        let origin = Origin {
            peer,
            transport: Transport::Udp,
            conn_id,
        };
        let call = Call {
            record,
            origin,
            tracked,
            want,
            global,
        };
        tokio::spawn(answer(shared.clone(), socket.clone(), call));
    }
}

/// Reserves reply memory for `call`, runs it and sends its reply.
async fn answer(shared: Arc<Shared>, socket: Arc<UdpSocket>, call: Call) {
    let Call {
        record,
        origin,
        tracked,
        want,
        global,
    } = call;
    let Some(mut charge) = reserve_reply(&shared, want, tracked.as_ref()).await else {
        return;
    };
    let Some((reply, _tracked)) = process(&shared, record, origin, tracked).await else {
        return;
    };
    if let Some(reply) = reply {
        let reply = fit_reply(&shared.budget, &mut charge, reply, 2);
        let datagram = datagram(reply);
        if let Err(e) = socket.send_to(&datagram, origin.peer).await {
            debug!(peer = %origin.peer, error = %e, "UDP send failed");
        }
    }
    drop((charge, global));
}

/// Reply memory for one call (`None` if the budget closed).
async fn reserve_reply(
    shared: &Shared,
    want: usize,
    tracked: Option<&Tracked>,
) -> Option<ReplyCharge> {
    if let Some(c) = shared.budget.try_charge(want, None) {
        return Some(c);
    }
    if let Some(t) = tracked {
        t.set_stage(Stage::Budget);
    }
    let c = wait_for_reply_memory(shared, None, want).await?;
    if let Some(t) = tracked {
        t.set_stage(Stage::Queued);
    }
    Some(c)
}

/// Runs `record` on the worker pool and waits for its reply (`None` inside when the message gets
/// no reply). The registry entry comes back with it, to be held until the reply is sent. `None`
/// when the request was dropped unrun (shutdown, or the pool refused it).
async fn process(
    shared: &Shared,
    record: Bytes,
    origin: Origin,
    tracked: Option<Tracked>,
) -> Option<(Option<Reply>, Option<Tracked>)> {
    let (done, answered) = tokio::sync::oneshot::channel();
    let then = move |reply, tracked| {
        let _ = done.send((reply, tracked));
    };
    // A datagram never runs in place: the socket's one reader serves every client.
    if !hand_off(shared, record, origin, tracked, then).await {
        return None;
    }
    // An error means the job was dropped unrun (the pool is stopping).
    let (reply, tracked) = answered.await.ok()?;
    if let Some(t) = &tracked {
        t.set_stage(Stage::Sending);
    }
    Some((reply, tracked))
}

/// One datagram: the tail (never spliced over UDP) is joined to the head. Sized once: growing it
/// could double its buffer past what was charged.
fn datagram(reply: Reply) -> BytesMut {
    let mut datagram = BytesMut::with_capacity(reply.message_len());
    datagram.extend_from_slice(&reply.head[Reply::MARKER_BYTES..]);
    if let Tail::Bytes(data) = &reply.tail {
        datagram.extend_from_slice(data);
        datagram.extend_from_slice(&ZERO_PAD[..rnfs_xdr::pad_len(data.len())]);
    }
    datagram
}
