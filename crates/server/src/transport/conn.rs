//! One TCP connection's protocol state as a machine without I/O (*sans-I/O*, the way quinn-proto
//! keeps QUIC apart from sockets): bytes and the time go in; whole records, deadlines and
//! decisions to close come out. Nothing here owns a socket, a runtime or a clock: `now` is always
//! passed in (milliseconds, as [`crate::clock::now_ms`] gives), so the tests below drive every
//! rule deterministically. [`super::tcp`] is the driver: it reads into [`Conn::recv_buf`], hands
//! out the records, sleeps until [`Conn::next_deadline`] and closes the connection for the
//! [`CloseReason`] the machine gives.
//!
//! # Record marking (RFC 5531 §11)
//! Over a byte stream each RPC message is a *record* of one or more *fragments*, each behind a
//! 4-byte marker: its top bit says "last fragment", its low 31 bits give the fragment's length.
//! Reassembly is [`RecordReader`]'s: it refuses a record larger than `record_bytes_max`, or with
//! more than `record_fragments_max` fragments, from the markers alone, before buffering (or
//! reserving room for) what they announce; a record sent as one fragment (what clients do) comes
//! out as a slice of the read buffer, uncopied. A non-final fragment, even an empty one, counts
//! towards the fragment limit.
//!
//! # Timers (limits from [`crate::config::Limits`])
//! * *Idle*: `idle_timeout_ms` after the last bytes arrived, a connection between records with
//!   nothing in flight is closed. With requests in flight it is not idle: the period starts over.
//! * *Slow record*: once a record has begun it must be whole within `record_receive_ms_max`. Its
//!   clock starts when, all whole records taken out, part of one is left (bytes in the read buffer
//!   or fragments put aside); empty non-final fragments leave nothing, so they do not start it.
//! * *Send stall* ([`SendClock`], kept by the connection's writer task, which sends replies
//!   apart from the reader): one reply may take at most `send_stall_ms_max` to send.

use bytes::{Bytes, BytesMut};

use rnfs_oncrpc::peek::CallPeek;
use rnfs_oncrpc::record::{RecordError, RecordReader};

use crate::config::Limits;

/// Read buffer growth step.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
/// A new connection's read buffer: enough for any call but WRITE; it grows by
/// [`READ_CHUNK_BYTES`] when a larger record arrives. Small, so idle connections cost little.
pub const READ_FIRST_BYTES: usize = 4 << 10;
/// Bytes of a record marker (RFC 5531 §11).
const MARKER_BYTES: u64 = 4;

/// Why the machine closes a connection. The driver logs and counts each (see
/// `tcp::report_close`), as the `rnfsd_connections_closed` metric's reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// The byte stream is no valid sequence of records (too large, too many fragments).
    BadRecord(RecordError),
    /// A record begun was not whole within `ms` (`record_receive_ms_max`).
    SlowRecord { ms: u64 },
    /// Nothing arrived for `idle_timeout_ms` and nothing was in flight.
    Idle,
    /// One reply took longer than `ms` (`send_stall_ms_max`) to send: the client stopped reading.
    SendStall { ms: u64 },
}

/// One whole record (a call, unless the peer is confused), without its markers.
#[derive(Debug)]
pub struct Record {
    bytes: Bytes,
}

impl Record {
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The call header, peeked (`None` for a record that is no well-formed call; nothing in it
    /// is trusted).
    pub fn call(&self) -> Option<CallPeek<'_>> {
        CallPeek::parse(&self.bytes).ok()
    }

    /// What the connection counts as received for it: the record and one marker.
    pub fn wire_bytes(&self) -> u64 {
        self.bytes.len() as u64 + MARKER_BYTES
    }
}

/// The reading side of one TCP connection (see the module docs).
#[derive(Debug)]
pub struct Conn {
    reader: RecordReader,
    /// Bytes read and not yet taken out as records.
    input: BytesMut,
    idle_ms: u64,
    record_ms: u64,
    /// When bytes last arrived (or an idle period with requests in flight ended).
    last_activity_ms: u64,
    /// When the record being received began, if one is.
    record_started_ms: Option<u64>,
}

impl Conn {
    pub fn new(limits: &Limits, now_ms: u64) -> Conn {
        Conn {
            reader: RecordReader::new(limits.record_bytes_max, limits.record_fragments_max),
            input: BytesMut::with_capacity(READ_FIRST_BYTES),
            idle_ms: limits.idle_timeout_ms,
            record_ms: limits.record_receive_ms_max,
            last_activity_ms: now_ms,
            record_started_ms: None,
        }
    }

    /// The buffer the next read appends to, with room for it (grown by [`READ_CHUNK_BYTES`]
    /// when less than [`READ_FIRST_BYTES`] is spare). Report what was read with
    /// [`Conn::received`].
    pub fn recv_buf(&mut self) -> &mut BytesMut {
        if self.input.capacity() - self.input.len() < READ_FIRST_BYTES {
            self.input.reserve(READ_CHUNK_BYTES);
        }
        &mut self.input
    }

    /// `n` bytes (more than none) were appended to [`Conn::recv_buf`] at `now_ms`.
    pub fn received(&mut self, n: usize, now_ms: u64) {
        debug_assert!(n > 0, "end of stream is the driver's");
        self.last_activity_ms = now_ms;
    }

    /// `bytes` arrived at `now_ms` (copied in; the driver reads into [`Conn::recv_buf`] instead).
    #[cfg(test)]
    pub fn receive(&mut self, bytes: &[u8], now_ms: u64) {
        self.recv_buf().extend_from_slice(bytes);
        self.received(bytes.len(), now_ms);
    }

    /// The next whole record, if there is one. Call until `Ok(None)`, which also starts the
    /// slow-record clock at `now_ms` when part of a record is left. An error is final: the
    /// connection must be closed.
    pub fn poll_record(&mut self, now_ms: u64) -> Result<Option<Record>, CloseReason> {
        match self.reader.next_record(&mut self.input) {
            Ok(Some(bytes)) => Ok(Some(Record { bytes })),
            Ok(None) => {
                self.note_partial_record(now_ms);
                Ok(None)
            }
            Err(e) => Err(CloseReason::BadRecord(e)),
        }
    }

    /// Nothing is left once the records were taken out: no bytes of a next record have been
    /// read (the client has nothing else on its way to us, as far as we know).
    pub fn nothing_buffered(&self) -> bool {
        self.input.is_empty() && self.reader.partial_bytes() == 0
    }

    /// Starts or stops the slow-record clock, after every whole record was taken out.
    fn note_partial_record(&mut self, now_ms: u64) {
        let mid_record = !self.input.is_empty() || self.reader.partial_bytes() > 0;
        self.record_started_ms = match (mid_record, self.record_started_ms) {
            (false, _) => None,
            (true, None) => Some(now_ms),
            (true, started) => started,
        };
    }

    /// When [`Conn::on_timeout`] is next due: the slow-record deadline while a record is being
    /// received, else the idle deadline. Always `Some` (a connection always has one of them).
    pub fn next_deadline(&self) -> Option<u64> {
        Some(match self.record_started_ms {
            Some(t) => t.saturating_add(self.record_ms),
            None => self.last_activity_ms.saturating_add(self.idle_ms),
        })
    }

    /// The timer fired at `now_ms`, with `requests_in_flight` of the connection's requests not
    /// yet answered. `None` when nothing is due yet (sleep until [`Conn::next_deadline`] again)
    /// or when requests in flight keep an idle connection open (its idle period starts over).
    pub fn on_timeout(&mut self, now_ms: u64, requests_in_flight: usize) -> Option<CloseReason> {
        let deadline = self.next_deadline()?;
        if now_ms < deadline {
            return None;
        }
        if self.record_started_ms.is_some() {
            return Some(CloseReason::SlowRecord { ms: self.record_ms });
        }
        if requests_in_flight == 0 {
            return Some(CloseReason::Idle);
        }
        // Requests still running: not idle.
        self.last_activity_ms = now_ms;
        None
    }
}

/// The writer's send-stall timer: one reply may take at most `send_stall_ms_max` to send, from
/// when the writer takes it up to when its last byte is written.
#[derive(Debug)]
pub struct SendClock {
    stall_ms: u64,
    /// When the reply being sent was taken up, if one is.
    since_ms: Option<u64>,
}

impl SendClock {
    pub fn new(limits: &Limits) -> SendClock {
        SendClock {
            stall_ms: limits.send_stall_ms_max,
            since_ms: None,
        }
    }

    /// The writer took up a reply at `now_ms`.
    pub fn started(&mut self, now_ms: u64) {
        self.since_ms = Some(now_ms);
    }

    /// The reply was sent whole.
    pub fn finished(&mut self) {
        self.since_ms = None;
    }

    /// When the reply being sent stalls; `None` with nothing being sent.
    pub fn next_deadline(&self) -> Option<u64> {
        self.since_ms.map(|t| t.saturating_add(self.stall_ms))
    }

    /// The timer fired at `now_ms`: [`CloseReason::SendStall`] once the deadline is reached.
    pub fn on_timeout(&mut self, now_ms: u64) -> Option<CloseReason> {
        (now_ms >= self.next_deadline()?).then_some(CloseReason::SendStall { ms: self.stall_ms })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rnfs_oncrpc::record::put_record;

    const LAST: u32 = 0x8000_0000;
    const IDLE_MS: u64 = 10_000;
    const RECORD_MS: u64 = 3_000;
    const STALL_MS: u64 = 7_000;
    const T0: u64 = 1_000;

    fn limits() -> Limits {
        Limits {
            record_bytes_max: 1024,
            record_fragments_max: 4,
            idle_timeout_ms: IDLE_MS,
            record_receive_ms_max: RECORD_MS,
            send_stall_ms_max: STALL_MS,
            ..Limits::default()
        }
    }

    /// A GETATTR call header with AUTH_NONE (RFC 5531 §9), then `args`.
    fn call(xid: u32, args: &[u8]) -> Vec<u8> {
        let words = [xid, 0, 2, 100_003, 3, 1, 0, 0, 0, 0];
        let mut v: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        v.extend_from_slice(args);
        v
    }

    fn marked(record: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        put_record(&mut v, record);
        v
    }

    fn fragment(out: &mut Vec<u8>, data: &[u8], last: bool) {
        let m = data.len() as u32 | if last { LAST } else { 0 };
        out.extend_from_slice(&m.to_be_bytes());
        out.extend_from_slice(data);
    }

    /// Every whole record available at `now`.
    fn drain(c: &mut Conn, now: u64) -> Vec<Bytes> {
        let mut out = Vec::new();
        while let Some(r) = c.poll_record(now).unwrap() {
            out.push(r.into_bytes());
        }
        out
    }

    #[test]
    fn record_split_across_one_byte_reads() {
        let mut c = Conn::new(&limits(), T0);
        let rec = call(7, b"handle..");
        let wire = marked(&rec);
        for (i, b) in wire.iter().enumerate() {
            assert!(
                drain(&mut c, T0 + i as u64).is_empty(),
                "no record before byte {i}"
            );
            c.receive(std::slice::from_ref(b), T0 + i as u64);
        }
        let got = c.poll_record(T0 + 100).unwrap().unwrap();
        assert_eq!(got.bytes()[..], rec[..]);
        assert_eq!(got.wire_bytes(), rec.len() as u64 + 4);
        let peek = got.call().expect("a well-formed call");
        assert_eq!((peek.xid, peek.prog, peek.proc_num), (7, 100_003, 1));
        assert_eq!(peek.args, b"handle..");
        assert!(c.poll_record(T0 + 100).unwrap().is_none());
    }

    #[test]
    fn single_fragment_record_is_not_copied() {
        let mut c = Conn::new(&limits(), T0);
        c.receive(&marked(b"abcdefgh"), T0);
        let base = c.input.as_ptr() as usize;
        let rec = c.poll_record(T0).unwrap().unwrap();
        assert_eq!(
            rec.bytes().as_ptr() as usize,
            base + 4,
            "a slice of the read buffer"
        );
    }

    #[test]
    fn multi_fragment_record_and_the_next_in_one_read() {
        let mut c = Conn::new(&limits(), T0);
        let mut wire = Vec::new();
        fragment(&mut wire, b"abc", false);
        fragment(&mut wire, b"de", false);
        fragment(&mut wire, b"fgh", true);
        fragment(&mut wire, b"next", true);
        c.receive(&wire, T0);
        let got = drain(&mut c, T0);
        assert_eq!(
            got,
            vec![Bytes::from_static(b"abcdefgh"), Bytes::from_static(b"next")]
        );
        assert_eq!(c.next_deadline(), Some(T0 + IDLE_MS), "nothing left: idle");
    }

    #[test]
    fn oversized_marker_closes_without_allocating_its_size() {
        let mut c = Conn::new(&limits(), T0);
        c.receive(&(LAST | 1025).to_be_bytes(), T0);
        let cap = c.input.capacity();
        assert_eq!(
            c.poll_record(T0).unwrap_err(),
            CloseReason::BadRecord(RecordError::TooLarge {
                claimed_bytes: 1025,
                max_bytes: 1024
            })
        );
        assert_eq!(
            c.input.capacity(),
            cap,
            "nothing reserved for the announced size"
        );

        // The largest claim a marker can make, and a record that passes the limit only in its
        // second fragment.
        let mut c = Conn::new(&limits(), T0);
        c.receive(&u32::MAX.to_be_bytes(), T0);
        assert!(matches!(
            c.poll_record(T0),
            Err(CloseReason::BadRecord(RecordError::TooLarge { .. }))
        ));
        let mut c = Conn::new(&limits(), T0);
        let mut wire = Vec::new();
        fragment(&mut wire, &[0; 1000], false);
        wire.extend_from_slice(&(LAST | 25).to_be_bytes());
        c.receive(&wire, T0);
        assert_eq!(
            c.poll_record(T0).unwrap_err(),
            CloseReason::BadRecord(RecordError::TooLarge {
                claimed_bytes: 1025,
                max_bytes: 1024
            })
        );
    }

    #[test]
    fn a_record_of_exactly_the_limit_is_taken() {
        let mut c = Conn::new(&limits(), T0);
        c.receive(&marked(&[9; 1024]), T0);
        assert_eq!(drain(&mut c, T0)[0].len(), 1024);
    }

    #[test]
    fn empty_fragments_count_but_do_not_start_the_record_clock() {
        let mut c = Conn::new(&limits(), T0);
        let mut wire = Vec::new();
        for _ in 0..3 {
            fragment(&mut wire, b"", false);
        }
        c.receive(&wire, T0);
        assert!(drain(&mut c, T0).is_empty());
        // Nothing is buffered, so the connection counts as between records.
        assert_eq!(c.next_deadline(), Some(T0 + IDLE_MS));
        // A fourth fragment is the last one allowed.
        let mut last = Vec::new();
        fragment(&mut last, b"x", true);
        c.receive(&last, T0 + 1);
        assert_eq!(drain(&mut c, T0 + 1), vec![Bytes::from_static(b"x")]);
        // The count starts over with each record: five empty fragments are one too many.
        let mut wire = Vec::new();
        for _ in 0..5 {
            fragment(&mut wire, b"", false);
        }
        c.receive(&wire, T0 + 2);
        assert_eq!(
            c.poll_record(T0 + 2).unwrap_err(),
            CloseReason::BadRecord(RecordError::TooManyFragments { max: 4 })
        );
    }

    #[test]
    fn an_empty_final_fragment_is_an_empty_record() {
        let mut c = Conn::new(&limits(), T0);
        let mut wire = Vec::new();
        fragment(&mut wire, b"", true);
        c.receive(&wire, T0);
        let rec = c.poll_record(T0).unwrap().unwrap();
        assert!(rec.bytes().is_empty());
        assert_eq!(rec.call(), None);
        assert_eq!(rec.wire_bytes(), 4);
    }

    #[test]
    fn idle_timeout_fires_at_its_deadline_and_not_before() {
        let mut c = Conn::new(&limits(), T0);
        assert!(drain(&mut c, T0).is_empty());
        assert_eq!(c.next_deadline(), Some(T0 + IDLE_MS));
        assert_eq!(c.on_timeout(T0 + IDLE_MS - 1, 0), None);
        assert_eq!(
            c.next_deadline(),
            Some(T0 + IDLE_MS),
            "an early timer changes nothing"
        );
        assert_eq!(c.on_timeout(T0 + IDLE_MS, 0), Some(CloseReason::Idle));
    }

    #[test]
    fn receiving_bytes_moves_the_idle_deadline() {
        let mut c = Conn::new(&limits(), T0);
        c.receive(&marked(b"ping"), T0 + 4_000);
        assert_eq!(drain(&mut c, T0 + 4_000).len(), 1);
        assert_eq!(c.next_deadline(), Some(T0 + 4_000 + IDLE_MS));
        assert_eq!(
            c.on_timeout(T0 + IDLE_MS, 0),
            None,
            "the old deadline is gone"
        );
        assert_eq!(
            c.on_timeout(T0 + 4_000 + IDLE_MS, 0),
            Some(CloseReason::Idle)
        );
    }

    #[test]
    fn requests_in_flight_keep_an_idle_connection_open() {
        let mut c = Conn::new(&limits(), T0);
        let at = T0 + IDLE_MS + 5;
        assert_eq!(c.on_timeout(at, 2), None);
        assert_eq!(
            c.next_deadline(),
            Some(at + IDLE_MS),
            "the idle period starts over"
        );
        assert_eq!(c.on_timeout(at + IDLE_MS - 1, 0), None);
        assert_eq!(c.on_timeout(at + IDLE_MS, 0), Some(CloseReason::Idle));
    }

    #[test]
    fn slow_record_closes_at_its_deadline_whatever_trickles_in() {
        let mut c = Conn::new(&limits(), T0);
        let wire = marked(&call(1, b"abcdefgh"));
        // The marker and a byte at T0 + 50: the record's clock starts when it is found partial.
        c.receive(&wire[..5], T0 + 50);
        assert!(drain(&mut c, T0 + 60).is_empty());
        assert_eq!(c.next_deadline(), Some(T0 + 60 + RECORD_MS));
        // A byte a second keeps the connection busy but does not move the record's deadline.
        for (i, b) in wire[5..8].iter().enumerate() {
            let at = T0 + 1_000 * (i as u64 + 1);
            c.receive(std::slice::from_ref(b), at);
            assert!(drain(&mut c, at).is_empty());
            assert_eq!(c.next_deadline(), Some(T0 + 60 + RECORD_MS));
        }
        assert_eq!(c.on_timeout(T0 + 60 + RECORD_MS - 1, 0), None);
        // Requests in flight do not excuse a slow record.
        assert_eq!(
            c.on_timeout(T0 + 60 + RECORD_MS, 3),
            Some(CloseReason::SlowRecord { ms: RECORD_MS })
        );
    }

    #[test]
    fn a_record_completed_in_time_stops_its_clock() {
        let mut c = Conn::new(&limits(), T0);
        let wire = marked(b"twelve bytes");
        c.receive(&wire[..6], T0);
        assert!(drain(&mut c, T0).is_empty());
        assert_eq!(c.next_deadline(), Some(T0 + RECORD_MS));
        c.receive(&wire[6..], T0 + RECORD_MS - 1);
        assert_eq!(drain(&mut c, T0 + RECORD_MS - 1).len(), 1);
        assert_eq!(c.next_deadline(), Some(T0 + RECORD_MS - 1 + IDLE_MS));
        assert_eq!(c.on_timeout(T0 + RECORD_MS, 0), None);
        // The next record gets a clock of its own, from when it is found partial.
        c.receive(&wire[..2], T0 + 5_000);
        assert!(drain(&mut c, T0 + 5_001).is_empty());
        assert_eq!(c.next_deadline(), Some(T0 + 5_001 + RECORD_MS));
    }

    #[test]
    fn a_partial_multi_fragment_record_runs_the_record_clock() {
        let mut c = Conn::new(&limits(), T0);
        let mut wire = Vec::new();
        fragment(&mut wire, b"first", false);
        c.receive(&wire, T0);
        // The fragment is put aside (the read buffer is empty), yet the record has begun.
        assert!(drain(&mut c, T0).is_empty());
        assert_eq!(c.next_deadline(), Some(T0 + RECORD_MS));
        assert_eq!(
            c.on_timeout(T0 + RECORD_MS, 0),
            Some(CloseReason::SlowRecord { ms: RECORD_MS })
        );
    }

    #[test]
    fn read_buffer_starts_small_and_grows_by_chunks() {
        let mut c = Conn::new(&limits(), T0);
        let first = c.recv_buf().capacity();
        assert!((READ_FIRST_BYTES..READ_CHUNK_BYTES).contains(&first));
        let fill = first - READ_FIRST_BYTES + 1;
        c.recv_buf().extend_from_slice(&vec![0; fill]);
        let buf = c.recv_buf();
        assert!(
            buf.capacity() - buf.len() >= READ_CHUNK_BYTES,
            "grown for the next read"
        );
    }

    #[test]
    fn send_stall_deadline_runs_per_reply() {
        let mut s = SendClock::new(&limits());
        assert_eq!(s.next_deadline(), None, "nothing being sent");
        assert_eq!(s.on_timeout(u64::MAX), None);
        s.started(T0);
        assert_eq!(s.next_deadline(), Some(T0 + STALL_MS));
        assert_eq!(s.on_timeout(T0 + STALL_MS - 1), None);
        s.finished();
        assert_eq!(s.on_timeout(T0 + STALL_MS), None, "sent in time");
        s.started(T0 + 5_000);
        assert_eq!(
            s.on_timeout(T0 + STALL_MS),
            None,
            "each reply has its own deadline"
        );
        assert_eq!(
            s.on_timeout(T0 + 5_000 + STALL_MS),
            Some(CloseReason::SendStall { ms: STALL_MS })
        );
    }
}
