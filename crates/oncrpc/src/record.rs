//! TCP record marking (RFC 5531 §11).
//!
//! A record is one or more fragments, each preceded by a 4-byte marker whose top bit says "last
//! fragment" and whose low 31 bits give the fragment's length. A [`RecordReader`] turns a stream
//! of bytes into whole records while enforcing two limits *before* buffering anything a peer
//! claims: the record's total size and its number of fragments. A record that arrives as a single
//! fragment (the usual case) is returned as a zero-copy slice of the input buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Default largest record: a 1 MiB WRITE plus generous room for RPC and NFS headers.
pub const RECORD_BYTES_MAX_DEFAULT: usize = (1 << 20) + (64 << 10);
/// Default most fragments in one record. Real clients send one; a long chain of tiny fragments
/// only costs us work.
pub const RECORD_FRAGMENTS_MAX_DEFAULT: usize = 256;

const LAST_FRAGMENT: u32 = 0x8000_0000;

/// Why a byte stream is not a valid sequence of records. The connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    #[error("record of at least {claimed_bytes} bytes exceeds the limit of {max_bytes}")]
    TooLarge {
        claimed_bytes: u64,
        max_bytes: usize,
    },
    #[error("record has more than {max} fragments")]
    TooManyFragments { max: usize },
}

/// Reassembles records from a TCP byte stream.
#[derive(Debug)]
pub struct RecordReader {
    record_bytes_max: usize,
    fragments_max: usize,
    /// Fragments of the current record received so far (only when it has more than one).
    partial: BytesMut,
    fragments: usize,
}

impl RecordReader {
    pub fn new(record_bytes_max: usize, fragments_max: usize) -> Self {
        RecordReader {
            record_bytes_max,
            fragments_max,
            partial: BytesMut::new(),
            fragments: 0,
        }
    }

    /// Bytes buffered for an incomplete multi-fragment record.
    pub fn partial_bytes(&self) -> usize {
        self.partial.len()
    }

    /// Takes the next complete record out of `input`, if there is one. Consumes fragments as they
    /// complete; leaves an incomplete fragment in `input` and reserves room for it (never more than
    /// the record limit allows).
    pub fn next_record(&mut self, input: &mut BytesMut) -> Result<Option<Bytes>, RecordError> {
        loop {
            if input.len() < 4 {
                return Ok(None);
            }
            let marker = u32::from_be_bytes([input[0], input[1], input[2], input[3]]);
            let last = marker & LAST_FRAGMENT != 0;
            let len = (marker & !LAST_FRAGMENT) as usize;
            let total = self.partial.len() as u64 + len as u64;
            if total > self.record_bytes_max as u64 {
                return Err(RecordError::TooLarge {
                    claimed_bytes: total,
                    max_bytes: self.record_bytes_max,
                });
            }
            if self.fragments + 1 > self.fragments_max {
                return Err(RecordError::TooManyFragments {
                    max: self.fragments_max,
                });
            }
            if input.len() < 4 + len {
                // Bounded by the check above: at most record_bytes_max more.
                input.reserve(4 + len - input.len());
                return Ok(None);
            }
            input.advance(4);
            let fragment = input.split_to(len);
            if last && self.partial.is_empty() {
                self.fragments = 0;
                return Ok(Some(fragment.freeze()));
            }
            self.partial.extend_from_slice(&fragment);
            self.fragments += 1;
            if last {
                self.fragments = 0;
                return Ok(Some(std::mem::take(&mut self.partial).freeze()));
            }
        }
    }
}

/// The marker for a record sent as one fragment of `len` bytes.
pub fn single_fragment_marker(len: usize) -> [u8; 4] {
    debug_assert!(len < LAST_FRAGMENT as usize);
    (LAST_FRAGMENT | len as u32).to_be_bytes()
}

/// Appends `record` to `out` as one fragment.
pub fn put_record<B: BufMut>(out: &mut B, record: &[u8]) {
    out.put_slice(&single_fragment_marker(record.len()));
    out.put_slice(record);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frag(out: &mut BytesMut, data: &[u8], last: bool) {
        let m = data.len() as u32 | if last { LAST_FRAGMENT } else { 0 };
        out.put_u32(m);
        out.put_slice(data);
    }

    #[test]
    fn single_fragment_is_zero_copy() {
        let mut input = BytesMut::new();
        frag(&mut input, b"hello world!", true);
        let base = input.as_ptr() as usize;
        let mut r = RecordReader::new(1024, 4);
        let rec = r.next_record(&mut input).unwrap().unwrap();
        assert_eq!(&rec[..], b"hello world!");
        assert_eq!(rec.as_ptr() as usize, base + 4);
        assert!(input.is_empty());
    }

    #[test]
    fn multi_fragment_reassembles() {
        let mut input = BytesMut::new();
        frag(&mut input, b"abc", false);
        frag(&mut input, b"", false);
        frag(&mut input, b"defg", true);
        frag(&mut input, b"next", true);
        let mut r = RecordReader::new(1024, 4);
        assert_eq!(&r.next_record(&mut input).unwrap().unwrap()[..], b"abcdefg");
        assert_eq!(&r.next_record(&mut input).unwrap().unwrap()[..], b"next");
        assert_eq!(r.next_record(&mut input).unwrap(), None);
    }

    #[test]
    fn huge_claim_refused_without_allocating() {
        // A marker claiming 2^31-1 bytes (the most a marker can say) and another claiming a little
        // over the limit in a second fragment: both refused from the 4-byte header alone.
        let mut input = BytesMut::new();
        input.put_u32(0xffff_ffff);
        let mut r = RecordReader::new(RECORD_BYTES_MAX_DEFAULT, 4);
        let cap_before = input.capacity();
        assert!(matches!(
            r.next_record(&mut input),
            Err(RecordError::TooLarge { .. })
        ));
        assert_eq!(
            input.capacity(),
            cap_before,
            "nothing reserved for the claimed length"
        );

        let mut input = BytesMut::new();
        frag(&mut input, &[0u8; 600], false);
        input.put_u32(LAST_FRAGMENT | 500);
        let mut r = RecordReader::new(1024, 4);
        assert!(matches!(
            r.next_record(&mut input),
            Err(RecordError::TooLarge {
                claimed_bytes: 1100,
                ..
            })
        ));
    }

    #[test]
    fn fragment_chain_is_bounded() {
        let mut input = BytesMut::new();
        for _ in 0..5 {
            frag(&mut input, b"", false);
        }
        let mut r = RecordReader::new(1024, 4);
        assert_eq!(
            r.next_record(&mut input),
            Err(RecordError::TooManyFragments { max: 4 })
        );
    }

    proptest! {
        #[test]
        fn any_split_of_any_fragmentation_reassembles(
            records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..5),
            frag_size in 1usize..64,
            chunk in 1usize..50,
        ) {
            let mut stream = BytesMut::new();
            for rec in &records {
                let chunks: Vec<&[u8]> = if rec.is_empty() { vec![&rec[..]] } else { rec.chunks(frag_size).collect() };
                for (i, c) in chunks.iter().enumerate() {
                    frag(&mut stream, c, i + 1 == chunks.len());
                }
            }
            let mut r = RecordReader::new(1024, 256);
            let mut input = BytesMut::new();
            let mut out = Vec::new();
            for piece in stream.chunks(chunk) {
                input.extend_from_slice(piece);
                while let Some(rec) = r.next_record(&mut input).unwrap() {
                    out.push(rec.to_vec());
                }
            }
            prop_assert_eq!(out, records);
        }

        #[test]
        fn never_panics(data in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut r = RecordReader::new(256, 8);
            let mut input = BytesMut::from(&data[..]);
            while let Ok(Some(_)) = r.next_record(&mut input) {}
        }
    }
}
