//! One RPC call being served and the reply being built for it (RFC 5531 §9), and the helpers
//! that write reply headers. Every program, transport and the statistics share these types; they
//! know nothing of sockets, clocks or the service's state.

use std::net::SocketAddr;

use bytes::{Bytes, BytesMut};
use tracing::debug;

use rnfs_oncrpc::{CallError, CallHeader, ReplyHeader};
use rnfs_xdr::XdrEncode;

use crate::config::Limits;

/// Which transport a request came over; it bounds the reply size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Udp,
}

impl Transport {
    /// Largest READ/READDIR payload that fits this transport's replies.
    pub fn payload_bytes_max(self, limits: &Limits) -> u32 {
        match self {
            Transport::Tcp => limits.transfer_bytes_max,
            Transport::Udp => limits.udp_payload_bytes_max(),
        }
    }
}

/// Whether a message gets a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Reply,
    Drop,
}

/// Where a message came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    pub peer: SocketAddr,
    pub transport: Transport,
    /// The connection (TCP) or socket (UDP) it arrived on: the owner of its loans.
    pub conn_id: u64,
}

/// One call being served.
pub struct Call {
    pub header: CallHeader,
    pub args: Bytes,
    pub peer: SocketAddr,
    pub transport: Transport,
    pub conn_id: u64,
    /// Milliseconds on the server's clock when the call was taken (the service reads no clock).
    pub now_ms: u64,
}

/// A pipe that holds loaned file pages between a READ and its send.
pub type LoanedPipe = rnfs_loan::Loan<PipeResource>;

/// The pipe a loan slot keeps between loans.
pub struct PipeResource(pub rnfs_sys::pipe::Pipe);

impl rnfs_loan::Resource for PipeResource {
    fn clean(&mut self) -> bool {
        // An aborted send leaves pages in the pipe: drop them before the next loan.
        self.0.clear().is_ok() && self.0.len_bytes().is_ok_and(|n| n == 0)
    }
}

/// What follows a reply's encoded head: nothing, READ data in a buffer, or READ data on loan.
pub enum Tail {
    None,
    /// Bytes sent after the head, then XDR padding.
    Bytes(Bytes),
    /// `len` bytes spliced from the loaned pipe after the head, then XDR padding.
    Spliced {
        loan: LoanedPipe,
        len: usize,
    },
}

/// A reply being built: the head (with 4 bytes reserved for a TCP record marker) and a tail.
pub struct Reply {
    pub head: BytesMut,
    pub tail: Tail,
    /// READ replies hold a loan for as long as they are in flight, whatever their path.
    pub loan: Option<rnfs_loan::Loan<PipeResource>>,
}

impl Default for Reply {
    fn default() -> Self {
        Self::new()
    }
}

impl Reply {
    pub const MARKER_BYTES: usize = 4;

    pub fn new() -> Reply {
        let mut head = BytesMut::with_capacity(256);
        head.extend_from_slice(&[0; Self::MARKER_BYTES]);
        Reply {
            head,
            tail: Tail::None,
            loan: None,
        }
    }

    /// Bytes of the tail, before padding.
    pub fn tail_len(&self) -> usize {
        match &self.tail {
            Tail::None => 0,
            Tail::Bytes(b) => b.len(),
            Tail::Spliced { len, .. } => *len,
        }
    }

    /// The RPC message's length: what the record marker announces.
    pub fn message_len(&self) -> usize {
        let tail = self.tail_len();
        self.head.len() - Self::MARKER_BYTES + tail + rnfs_xdr::pad_len(tail)
    }
}

/// Answers arguments that could not be decoded: PROC_UNAVAIL or GARBAGE_ARGS (RFC 5531 §9).
pub fn refuse_args(out: &mut BytesMut, call: &Call, e: &rnfs_xdr::ArgsError) -> Outcome {
    let header = match e {
        rnfs_xdr::ArgsError::ProcUnavail(_) => ReplyHeader::ProcUnavail,
        rnfs_xdr::ArgsError::GarbageArgs(err) => {
            debug!(peer = %call.peer, prog = call.header.prog, proc = call.header.proc_num, error = %err, "garbage arguments");
            ReplyHeader::GarbageArgs
        }
    };
    reply_header(out, call.header.xid, header)
}

/// Writes a reply that is only a header.
pub fn reply_header(out: &mut BytesMut, xid: u32, header: ReplyHeader) -> Outcome {
    header.encode(xid, out);
    Outcome::Reply
}

/// Writes a successful reply with `res` as its results.
pub fn reply_success<T: XdrEncode>(out: &mut BytesMut, xid: u32, res: &T) -> Outcome {
    out.reserve(ReplyHeader::Success.encoded_len() + res.encoded_len());
    ReplyHeader::Success.encode(xid, out);
    res.encode(out);
    Outcome::Reply
}

impl From<CallError> for Outcome {
    fn from(_: CallError) -> Self {
        Outcome::Drop
    }
}
