//! XDR, the External Data Representation of RFC 4506, as rnfsd uses it.
//!
//! # Design
//! * **Decoding is bounded and zero-copy.** A [`Decoder`] walks a [`bytes::Bytes`]; variable-length
//!   opaque data and strings come back as `Bytes` slices of the received record (so a WRITE payload is
//!   never copied, RFC 4506 §4.10). Every length read from the wire is checked against the bytes that
//!   remain *and* against the caller's protocol maximum before anything is allocated; array counts are
//!   checked against `remaining / minimum element size`, so a claimed count can never make us reserve
//!   memory that the message could not fill.
//! * **Strict.** Padding must be zero (§4.10), booleans must be 0 or 1 (§4.4), enums must be one of the
//!   declared values (§4.3), and [`Decoder::finish`] rejects trailing bytes.
//! * **Encoding** writes to any [`bytes::BufMut`] and cannot fail: all values we encode were built by us.
//!
//! The [`xdr_struct!`] and [`xdr_enum!`] macros generate the codec for plain structs and C-like enums
//! transcribed from `.x` definitions; discriminated unions are written by hand next to their types.
#![forbid(unsafe_code)]

use bytes::Buf;
pub use bytes::{BufMut, Bytes};

/// Why a message failed to decode. Every variant is a client error (GARBAGE_ARGS at the RPC layer).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("truncated: needed {needed_bytes} bytes, {remaining_bytes} remain")]
    Truncated {
        needed_bytes: usize,
        remaining_bytes: usize,
    },
    #[error("length {len} exceeds the limit of {max}")]
    LengthTooLarge { len: u64, max: u64 },
    #[error("non-zero XDR padding")]
    NonZeroPadding,
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    #[error("invalid boolean {0}")]
    InvalidBool(u32),
    #[error("invalid value {value} for {type_name}")]
    InvalidEnum { type_name: &'static str, value: i64 },
    #[error("nesting or list longer than {0} elements")]
    TooManyElements(usize),
}

pub type Result<T> = std::result::Result<T, Error>;

/// Why a procedure's arguments could not be decoded; maps one to one onto the RPC `accept_stat`s
/// PROC_UNAVAIL and GARBAGE_ARGS (RFC 5531 §9). Every protocol crate's `Args::decode` returns it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// The procedure number is not part of this program version (`PROC_UNAVAIL`).
    #[error("procedure {0} unavailable")]
    ProcUnavail(u32),
    /// The arguments are malformed, over a bound, or followed by extra bytes (`GARBAGE_ARGS`).
    #[error("garbage arguments: {0}")]
    GarbageArgs(Error),
}

impl From<Error> for ArgsError {
    fn from(e: Error) -> Self {
        ArgsError::GarbageArgs(e)
    }
}

/// Bytes of padding after `len` bytes of opaque data (RFC 4506 §4.9).
#[inline]
pub const fn pad_len(len: usize) -> usize {
    (4 - (len & 3)) & 3
}

/// `len` rounded up to a multiple of four.
#[inline]
pub const fn padded_len(len: usize) -> usize {
    len + pad_len(len)
}

/// A cursor over one received message. Cloning is cheap (it shares the buffer).
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Bytes,
}

impl Decoder {
    pub fn new(buf: Bytes) -> Self {
        Decoder { buf }
    }

    /// Bytes not yet consumed.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// The unconsumed bytes, without consuming them.
    pub fn peek_rest(&self) -> &Bytes {
        &self.buf
    }

    /// Consumes the decoder, returning what is left (e.g. procedure arguments after an RPC header).
    pub fn into_rest(self) -> Bytes {
        self.buf
    }

    /// Succeeds only if the whole message was consumed.
    pub fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(Error::TrailingBytes(self.buf.len()))
        }
    }

    #[inline]
    fn need(&self, needed_bytes: usize) -> Result<()> {
        if self.buf.len() < needed_bytes {
            Err(Error::Truncated {
                needed_bytes,
                remaining_bytes: self.buf.len(),
            })
        } else {
            Ok(())
        }
    }

    #[inline]
    pub fn u32(&mut self) -> Result<u32> {
        self.need(4)?;
        Ok(self.buf.get_u32())
    }

    #[inline]
    pub fn i32(&mut self) -> Result<i32> {
        self.need(4)?;
        Ok(self.buf.get_i32())
    }

    #[inline]
    pub fn u64(&mut self) -> Result<u64> {
        self.need(8)?;
        Ok(self.buf.get_u64())
    }

    #[inline]
    pub fn i64(&mut self) -> Result<i64> {
        self.need(8)?;
        Ok(self.buf.get_i64())
    }

    pub fn bool(&mut self) -> Result<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(Error::InvalidBool(v)),
        }
    }

    /// Fixed-length opaque data of `len` bytes plus padding, as a slice of the message.
    pub fn opaque_fixed(&mut self, len: usize) -> Result<Bytes> {
        let total = padded_len(len);
        self.need(total)?;
        let data = self.buf.split_to(len);
        let pad = self.buf.split_to(total - len);
        if pad.iter().any(|&b| b != 0) {
            return Err(Error::NonZeroPadding);
        }
        Ok(data)
    }

    /// Fixed-length opaque data copied into an array (for small values such as verifiers).
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let data = self.opaque_fixed(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(&data);
        Ok(out)
    }

    /// A length word, checked against `max` before anything else.
    pub fn length(&mut self, max: usize) -> Result<usize> {
        let len = self.u32()?;
        if len as u64 > max as u64 {
            return Err(Error::LengthTooLarge {
                len: len.into(),
                max: max as u64,
            });
        }
        Ok(len as usize)
    }

    /// Variable-length opaque data of at most `max` bytes (RFC 4506 §4.10), zero-copy.
    pub fn opaque_var(&mut self, max: usize) -> Result<Bytes> {
        let len = self.length(max)?;
        self.opaque_fixed(len)
    }

    /// An XDR string (§4.11). NFS names are byte strings, not UTF-8, so they stay bytes.
    pub fn string(&mut self, max: usize) -> Result<Bytes> {
        self.opaque_var(max)
    }

    /// The element count of a variable-length array of at most `max` elements, each at least
    /// `min_element_bytes` long on the wire: a count the remaining bytes cannot hold is refused before
    /// the caller reserves memory for it.
    pub fn array_len(&mut self, max: usize, min_element_bytes: usize) -> Result<usize> {
        let count = self.length(max)?;
        let fits = count.saturating_mul(min_element_bytes.max(1)) <= self.buf.len();
        if !fits {
            return Err(Error::Truncated {
                needed_bytes: count.saturating_mul(min_element_bytes.max(1)),
                remaining_bytes: self.buf.len(),
            });
        }
        Ok(count)
    }

    /// Decodes one value of type `T`.
    #[inline]
    pub fn decode<T: XdrDecode>(&mut self) -> Result<T> {
        T::decode(self)
    }
}

/// A type that can be read from XDR.
pub trait XdrDecode: Sized {
    fn decode(d: &mut Decoder) -> Result<Self>;
}

/// A type that can be written as XDR.
pub trait XdrEncode {
    fn encode<B: BufMut>(&self, b: &mut B);

    /// Exact encoded size in bytes; used to size reply buffers and to check reply limits.
    fn encoded_len(&self) -> usize;
}

/// Decodes a whole message as `T`, rejecting trailing bytes.
pub fn from_bytes<T: XdrDecode>(buf: Bytes) -> Result<T> {
    let mut d = Decoder::new(buf);
    let v = T::decode(&mut d)?;
    d.finish()?;
    Ok(v)
}

/// Encodes `v` into a fresh buffer of exactly the right size.
pub fn to_bytes<T: XdrEncode + ?Sized>(v: &T) -> Bytes {
    let mut out = bytes::BytesMut::with_capacity(v.encoded_len());
    v.encode(&mut out);
    out.freeze()
}

/// Writes variable-length opaque data: length, bytes, zero padding.
pub fn put_opaque_var<B: BufMut>(b: &mut B, data: &[u8]) {
    b.put_u32(data.len() as u32);
    put_opaque_fixed(b, data);
}

/// Writes fixed-length opaque data and its zero padding.
pub fn put_opaque_fixed<B: BufMut>(b: &mut B, data: &[u8]) {
    b.put_slice(data);
    b.put_bytes(0, pad_len(data.len()));
}

/// Encoded size of variable-length opaque data.
#[inline]
pub const fn opaque_var_len(len: usize) -> usize {
    4 + padded_len(len)
}

macro_rules! impl_prim {
    ($t:ty, $get:ident, $put:ident, $len:expr) => {
        impl XdrDecode for $t {
            #[inline]
            fn decode(d: &mut Decoder) -> Result<Self> {
                d.$get()
            }
        }
        impl XdrEncode for $t {
            #[inline]
            fn encode<B: BufMut>(&self, b: &mut B) {
                b.$put(*self)
            }
            #[inline]
            fn encoded_len(&self) -> usize {
                $len
            }
        }
    };
}
impl_prim!(u32, u32, put_u32, 4);
impl_prim!(i32, i32, put_i32, 4);
impl_prim!(u64, u64, put_u64, 8);
impl_prim!(i64, i64, put_i64, 8);

impl XdrDecode for bool {
    fn decode(d: &mut Decoder) -> Result<Self> {
        d.bool()
    }
}
impl XdrEncode for bool {
    fn encode<B: BufMut>(&self, b: &mut B) {
        b.put_u32(u32::from(*self))
    }
    fn encoded_len(&self) -> usize {
        4
    }
}

/// XDR optional data (`T *x`, RFC 4506 §4.19): a boolean, then the value if present.
impl<T: XdrDecode> XdrDecode for Option<T> {
    fn decode(d: &mut Decoder) -> Result<Self> {
        if d.bool()? {
            Ok(Some(T::decode(d)?))
        } else {
            Ok(None)
        }
    }
}
impl<T: XdrEncode> XdrEncode for Option<T> {
    fn encode<B: BufMut>(&self, b: &mut B) {
        match self {
            Some(v) => {
                b.put_u32(1);
                v.encode(b);
            }
            None => b.put_u32(0),
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.as_ref().map_or(0, |v| v.encoded_len())
    }
}

impl XdrEncode for () {
    fn encode<B: BufMut>(&self, _b: &mut B) {}
    fn encoded_len(&self) -> usize {
        0
    }
}
impl XdrDecode for () {
    fn decode(_d: &mut Decoder) -> Result<Self> {
        Ok(())
    }
}

/// Variable-length opaque data of at most `MAX` bytes (`opaque x<MAX>`), held without copying.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Opaque<const MAX: usize>(pub Bytes);

impl<const MAX: usize> Opaque<MAX> {
    pub const MAX_BYTES: usize = MAX;

    /// Wraps `data`, or returns `None` if it is longer than `MAX`.
    pub fn new(data: impl Into<Bytes>) -> Option<Self> {
        let data = data.into();
        (data.len() <= MAX).then_some(Opaque(data))
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<const MAX: usize> std::fmt::Debug for Opaque<MAX> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names are usually printable; show them as text, anything else as a byte count.
        if self.0.len() <= 64 && self.0.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            write!(f, "{:?}", String::from_utf8_lossy(&self.0))
        } else {
            write!(f, "<{} bytes>", self.0.len())
        }
    }
}

impl<const MAX: usize> XdrDecode for Opaque<MAX> {
    fn decode(d: &mut Decoder) -> Result<Self> {
        Ok(Opaque(d.opaque_var(MAX)?))
    }
}
impl<const MAX: usize> XdrEncode for Opaque<MAX> {
    fn encode<B: BufMut>(&self, b: &mut B) {
        put_opaque_var(b, &self.0)
    }
    fn encoded_len(&self) -> usize {
        opaque_var_len(self.0.len())
    }
}

/// Fixed-length opaque data (`opaque x[N]`), small enough to copy (verifiers, cookies).
impl<const N: usize> XdrDecode for [u8; N] {
    fn decode(d: &mut Decoder) -> Result<Self> {
        d.array::<N>()
    }
}
impl<const N: usize> XdrEncode for [u8; N] {
    fn encode<B: BufMut>(&self, b: &mut B) {
        put_opaque_fixed(b, self)
    }
    fn encoded_len(&self) -> usize {
        padded_len(N)
    }
}

/// A variable-length array of at most `MAX` elements (`T x<MAX>`). `MIN_BYTES` is the smallest
/// encoded size of one element, used to refuse counts the message cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Array<T, const MAX: usize>(pub Vec<T>);

impl<T: XdrDecode + MinEncodedLen, const MAX: usize> XdrDecode for Array<T, MAX> {
    fn decode(d: &mut Decoder) -> Result<Self> {
        let count = d.array_len(MAX, T::MIN_ENCODED_LEN)?;
        let mut v = Vec::with_capacity(count);
        for _ in 0..count {
            v.push(T::decode(d)?);
        }
        Ok(Array(v))
    }
}
impl<T: XdrEncode, const MAX: usize> XdrEncode for Array<T, MAX> {
    fn encode<B: BufMut>(&self, b: &mut B) {
        b.put_u32(self.0.len() as u32);
        for v in &self.0 {
            v.encode(b);
        }
    }
    fn encoded_len(&self) -> usize {
        4 + self.0.iter().map(XdrEncode::encoded_len).sum::<usize>()
    }
}

/// An XDR linked list of at most `MAX` elements, flattened to a vector. The `.x` form is
/// `struct entry { T value; entry *next; }` (READDIR's entries, the MOUNT export list, the
/// portmapper's DUMP); each link is optional data (RFC 4506 §4.19), so the wire form is
/// `bool(true) value` per element and a final `bool(false)`. Decoding refuses more than `MAX`
/// elements ([`Error::TooManyElements`]) and never reserves memory from a claimed count (a list has
/// none); encoding writes what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct List<T, const MAX: usize>(pub Vec<T>);

impl<T, const MAX: usize> List<T, MAX> {
    /// Most elements a decoded list may hold.
    pub const MAX_ELEMENTS: usize = MAX;

    /// The elements, as a vector.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }
}

// Manual so that an empty list needs no `T: Default`.
impl<T, const MAX: usize> Default for List<T, MAX> {
    fn default() -> Self {
        List(Vec::new())
    }
}

impl<T, const MAX: usize> From<Vec<T>> for List<T, MAX> {
    fn from(v: Vec<T>) -> Self {
        List(v)
    }
}

impl<T, const MAX: usize> FromIterator<T> for List<T, MAX> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        List(iter.into_iter().collect())
    }
}

// Read access as a slice (`len`, `last`, `iter`, ...) so callers need not reach into `.0`.
impl<T, const MAX: usize> std::ops::Deref for List<T, MAX> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<T, const MAX: usize> IntoIterator for List<T, MAX> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a, T, const MAX: usize> IntoIterator for &'a List<T, MAX> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<T: XdrDecode, const MAX: usize> XdrDecode for List<T, MAX> {
    fn decode(d: &mut Decoder) -> Result<Self> {
        decode_list(d, MAX, T::decode).map(List)
    }
}
impl<T: XdrEncode, const MAX: usize> XdrEncode for List<T, MAX> {
    fn encode<B: BufMut>(&self, b: &mut B) {
        encode_list(b, &self.0)
    }
    fn encoded_len(&self) -> usize {
        list_encoded_len(&self.0)
    }
}

/// The smallest number of bytes one value of a type takes on the wire.
pub trait MinEncodedLen {
    const MIN_ENCODED_LEN: usize;
}
impl MinEncodedLen for u32 {
    const MIN_ENCODED_LEN: usize = 4;
}
impl MinEncodedLen for i32 {
    const MIN_ENCODED_LEN: usize = 4;
}
impl MinEncodedLen for u64 {
    const MIN_ENCODED_LEN: usize = 8;
}
impl<const MAX: usize> MinEncodedLen for Opaque<MAX> {
    const MIN_ENCODED_LEN: usize = 4;
}

/// Decodes an XDR linked list (see [`List`], which protocol types use; this is its runtime-bounded
/// form): a sequence of `bool(true) value` terminated by `bool(false)`. The list is limited to
/// `max` elements so a hostile peer cannot make us loop or allocate without bound.
pub fn decode_list<T, F>(d: &mut Decoder, max: usize, mut item: F) -> Result<Vec<T>>
where
    F: FnMut(&mut Decoder) -> Result<T>,
{
    let mut out = Vec::new();
    while d.bool()? {
        if out.len() >= max {
            return Err(Error::TooManyElements(max));
        }
        out.push(item(d)?);
    }
    Ok(out)
}

/// Encodes an XDR linked list; see [`decode_list`].
pub fn encode_list<'a, T: XdrEncode + 'a, B: BufMut>(
    b: &mut B,
    items: impl IntoIterator<Item = &'a T>,
) {
    for it in items {
        b.put_u32(1);
        it.encode(b);
    }
    b.put_u32(0);
}

/// Encoded size of an XDR linked list.
pub fn list_encoded_len<'a, T: XdrEncode + 'a>(items: impl IntoIterator<Item = &'a T>) -> usize {
    4 + items
        .into_iter()
        .map(|i| 4 + i.encoded_len())
        .sum::<usize>()
}

/// Declares a struct whose XDR form is its fields in order (RFC 4506 §4.14).
///
/// ```
/// rnfs_xdr::xdr_struct! {
///     /// A pair.
///     #[derive(Debug, Clone, PartialEq)]
///     pub struct Pair { pub a: u32, pub b: u64 }
/// }
/// ```
#[macro_export]
macro_rules! xdr_struct {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $( $(#[$fmeta:meta])* $fvis:vis $field:ident : $ty:ty ),* $(,)? }
    ) => {
        $(#[$meta])*
        $vis struct $name { $( $(#[$fmeta])* $fvis $field : $ty ),* }

        impl $crate::XdrDecode for $name {
            #[allow(unused_variables)]
            fn decode(d: &mut $crate::Decoder) -> $crate::Result<Self> {
                Ok($name { $( $field: <$ty as $crate::XdrDecode>::decode(d)? ),* })
            }
        }
        impl $crate::XdrEncode for $name {
            #[allow(unused_variables)]
            fn encode<B: $crate::BufMut>(&self, b: &mut B) {
                $( $crate::XdrEncode::encode(&self.$field, b); )*
            }
            fn encoded_len(&self) -> usize {
                0 $( + $crate::XdrEncode::encoded_len(&self.$field) )*
            }
        }
    };
}

/// Declares a C-like enum with explicit discriminants (RFC 4506 §4.3). Decoding an undeclared value
/// is an error, never a panic.
#[macro_export]
macro_rules! xdr_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $( $(#[$vmeta:meta])* $variant:ident = $value:expr ),* $(,)? }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(i32)]
        $vis enum $name { $( $(#[$vmeta])* $variant = $value ),* }

        impl $name {
            /// Every declared value.
            pub const ALL: &'static [$name] = &[ $( $name::$variant ),* ];

            /// The variant with wire value `v`, if declared.
            pub fn from_i32(v: i32) -> Option<Self> {
                match v {
                    $( x if x == $value => Some($name::$variant), )*
                    _ => None,
                }
            }
        }
        impl $crate::XdrDecode for $name {
            fn decode(d: &mut $crate::Decoder) -> $crate::Result<Self> {
                let v = d.i32()?;
                $name::from_i32(v).ok_or($crate::Error::InvalidEnum {
                    type_name: stringify!($name),
                    value: v.into(),
                })
            }
        }
        impl $crate::XdrEncode for $name {
            fn encode<B: $crate::BufMut>(&self, b: &mut B) {
                b.put_i32(*self as i32)
            }
            fn encoded_len(&self) -> usize {
                4
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    xdr_struct! {
        #[derive(Debug, Clone, PartialEq)]
        struct Sample { a: u32, b: i64, c: bool, name: Opaque<16>, opt: Option<u32>, fixed: [u8; 5] }
    }
    xdr_enum! {
        enum Color { Red = 0, Green = 7, Blue = -3 }
    }

    fn sample() -> impl Strategy<Value = Sample> {
        (
            any::<u32>(),
            any::<i64>(),
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..=16),
            any::<Option<u32>>(),
            any::<[u8; 5]>(),
        )
            .prop_map(|(a, b, c, n, opt, fixed)| Sample {
                a,
                b,
                c,
                name: Opaque(n.into()),
                opt,
                fixed,
            })
    }

    proptest! {
        #[test]
        fn struct_round_trip(s in sample()) {
            let enc = to_bytes(&s);
            prop_assert_eq!(enc.len(), s.encoded_len());
            prop_assert_eq!(enc.len() % 4, 0);
            let dec: Sample = from_bytes(enc).unwrap();
            prop_assert_eq!(dec, s);
        }

        #[test]
        fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = from_bytes::<Sample>(Bytes::from(data));
        }

        #[test]
        fn list_round_trip(v in proptest::collection::vec(any::<u32>(), 0..50)) {
            let mut out = bytes::BytesMut::new();
            encode_list(&mut out, &v);
            prop_assert_eq!(out.len(), list_encoded_len(&v));
            let mut d = Decoder::new(out.freeze());
            let back = decode_list(&mut d, 50, |d| d.u32()).unwrap();
            d.finish().unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn list_type_round_trip(v in proptest::collection::vec(any::<u32>(), 0..=50)) {
            let l = List::<u32, 50>(v.clone());
            let enc = to_bytes(&l);
            prop_assert_eq!(enc.len(), l.encoded_len());
            // Same wire form as the free functions the fuzz target drives.
            let mut raw = bytes::BytesMut::new();
            encode_list(&mut raw, &v);
            prop_assert_eq!(&enc[..], &raw[..]);
            prop_assert_eq!(from_bytes::<List<u32, 50>>(enc).unwrap(), l);
        }

        #[test]
        fn list_type_round_trip_variable_elements(
            v in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..=16), 0..=20)
        ) {
            let l: List<Opaque<16>, 20> = v.into_iter().map(|o| Opaque(o.into())).collect();
            let enc = to_bytes(&l);
            prop_assert_eq!(enc.len(), l.encoded_len());
            prop_assert_eq!(from_bytes::<List<Opaque<16>, 20>>(enc).unwrap(), l);
        }

        #[test]
        fn list_type_decode_is_bounded(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            if let Ok(l) = from_bytes::<List<u32, 4>>(Bytes::from(data)) {
                prop_assert!(l.len() <= List::<u32, 4>::MAX_ELEMENTS);
            }
        }

        #[test]
        fn enum_round_trip(c in proptest::sample::select(Color::ALL)) {
            prop_assert_eq!(from_bytes::<Color>(to_bytes(&c)).unwrap(), c);
        }
    }

    #[test]
    fn opaque_is_zero_copy() {
        let msg = Bytes::from(vec![0, 0, 0, 3, b'a', b'b', b'c', 0]);
        let base = msg.as_ptr() as usize;
        let mut d = Decoder::new(msg);
        let o = d.opaque_var(10).unwrap();
        assert_eq!(&o[..], b"abc");
        assert_eq!(
            o.as_ptr() as usize,
            base + 4,
            "opaque data must be a slice of the message"
        );
    }

    #[test]
    fn rejects_nonzero_padding() {
        let mut d = Decoder::new(Bytes::from(vec![0, 0, 0, 1, b'a', 0, 1, 0]));
        assert_eq!(d.opaque_var(10), Err(Error::NonZeroPadding));
    }

    #[test]
    fn rejects_length_over_limit_before_reading() {
        // Claims 4 GiB - 1 bytes; only the limit check runs, nothing is allocated.
        let mut d = Decoder::new(Bytes::from(vec![0xff, 0xff, 0xff, 0xff]));
        assert!(matches!(
            d.opaque_var(1 << 20),
            Err(Error::LengthTooLarge { .. })
        ));
        let mut d = Decoder::new(Bytes::from(vec![0, 0, 0, 9, 1, 2]));
        assert!(matches!(d.opaque_var(100), Err(Error::Truncated { .. })));
    }

    #[test]
    fn array_count_checked_against_remaining() {
        let mut d = Decoder::new(Bytes::from(vec![0, 0, 0, 16, 0, 0, 0, 1]));
        assert!(matches!(
            d.decode::<Array<u32, 16>>(),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn rejects_bad_bool_enum_trailing() {
        assert_eq!(
            from_bytes::<bool>(Bytes::from(vec![0, 0, 0, 2])),
            Err(Error::InvalidBool(2))
        );
        assert!(matches!(
            from_bytes::<Color>(Bytes::from(vec![0, 0, 0, 1])),
            Err(Error::InvalidEnum { .. })
        ));
        assert_eq!(
            from_bytes::<u32>(Bytes::from(vec![0, 0, 0, 1, 0])),
            Err(Error::TrailingBytes(1))
        );
    }

    #[test]
    fn list_type_wire_form() {
        let enc = to_bytes(&List::<u32, 4>(vec![7, 9]));
        let want = [0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 9, 0, 0, 0, 0];
        assert_eq!(&enc[..], &want);
        assert_eq!(&to_bytes(&List::<u32, 4>::default())[..], &[0, 0, 0, 0]);
    }

    #[test]
    fn list_type_refuses_max_plus_one() {
        let full = to_bytes(&List::<u32, 3>(vec![1, 2, 3]));
        assert_eq!(
            from_bytes::<List<u32, 3>>(full).map(List::into_vec),
            Ok(vec![1, 2, 3])
        );
        let over = to_bytes(&List::<u32, 3>(vec![1, 2, 3, 4]));
        assert_eq!(
            from_bytes::<List<u32, 3>>(over),
            Err(Error::TooManyElements(3))
        );
    }

    #[test]
    fn list_is_bounded() {
        let mut out = bytes::BytesMut::new();
        encode_list(&mut out, &[1u32, 2, 3]);
        let mut d = Decoder::new(out.freeze());
        assert_eq!(
            decode_list(&mut d, 2, |d| d.u32()),
            Err(Error::TooManyElements(2))
        );
    }
}
