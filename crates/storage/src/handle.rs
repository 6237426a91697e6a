//! File handles: the opaque `nfs_fh3` the server hands out (RFC 1813 §2.3.3, §2.5).
//!
//! # Layout (version 2)
//! ```text
//! byte 0           layout version (2)
//! bytes 1..5       export id, u32 big-endian       -- readable without the key, for routing
//! bytes 5..n-16    backend body (at most MAX_BODY bytes)
//! bytes n-16..n-8  export tag: blake3::keyed_hash(export key, bytes[0..n-16]), first 8 bytes
//! bytes n-8..n     server tag: blake3::keyed_hash(server key, bytes[0..n-8]), first 8 bytes
//! ```
//! The whole handle is at most `NFS3_FHSIZE` = 64 bytes. Version 1 (one 16-byte MAC under the
//! server key) is retired: such handles are [`Error::Stale`].
//!
//! # Why a MAC
//! A handle is a capability: whoever presents one skips the directory permission checks on the path to
//! the object (the backend opens objects by kernel handle, as root). Kernel handles are guessable
//! (inode + generation), so without a MAC a client could reach files outside its export or in
//! directories it may not search. The keyed MAC makes handles unforgeable; the key is persisted
//! ([`HandleKey::load_or_create`]) so handles stay valid across restarts, as RFC 1813 §2.3.3 expects
//! of a handle for an object that still exists. Tags are compared in constant time.
//!
//! # Why two tags
//! A handle is also bound to its export's *root*: the export key ([`HandleKey::for_export`]) is
//! derived from the server key, the export id, the root's kernel handle and its path. Narrowing
//! or moving an export (same id, another root) changes the key, so handles issued for the old
//! root, which may name objects outside the new one, no longer verify. Such a handle is
//! [`Error::Stale`] — RFC 1813 §2.6's "access to it has been revoked", which makes clients look
//! the path up again — not [`Error::BadHandle`] ("failed internal consistency checks"), which
//! they report as an I/O error. The server tag tells the two apart: it covers everything else
//! (the export tag included) under the server key, which does not change with exports, so a
//! handle this server issued verifies it whatever the export has become since, and a forged or
//! corrupted one does not ([`Error::BadHandle`]). Forging a handle still takes both tags: 128 bits
//! (the Stale/BadHandle answer tells whether a guessed server tag is right, but only for an export
//! tag fixed beforehand).
//!
//! # Verified once, at the seam
//! A handle from a client is a [`FileHandle`]: wire bytes that prove nothing. The only way to
//! turn one into a [`VerifiedHandle`], which is what every [`crate::Backend`] call that names a
//! client's object takes, is [`ExportKey::verify`]. The server does it once per handle, where it
//! routes the request to its export (with the key the export's backend sealed its handles with:
//! [`crate::Backend::handle_key`]), so a backend never sees unverified bytes and cannot forget
//! the check: no other code can make a `VerifiedHandle`. Backends mint handles with [`seal`].

use std::fmt;
use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut, Bytes, BytesMut};

use crate::{Error, Result};

/// Largest handle NFSv3 allows (`NFS3_FHSIZE`).
pub const FHSIZE: usize = 64;
/// The layout this module writes and accepts.
pub const LAYOUT_VERSION: u8 = 2;
/// The layout of earlier servers: routed to its export, then refused as stale.
pub const RETIRED_LAYOUT_VERSION: u8 = 1;
/// Version byte plus export id.
pub const HEADER_LEN: usize = 5;
/// Length of each of the two tags.
pub const TAG_LEN: usize = 8;
/// Length of the two tags together.
pub const MAC_LEN: usize = 2 * TAG_LEN;
/// The blake3 `derive_key` context of export keys (fixed forever: changing it changes every key).
const EXPORT_KEY_CONTEXT: &str = "rnfsd 2026-12 export file handle key v2";
/// Largest backend body that fits.
pub const MAX_BODY: usize = FHSIZE - HEADER_LEN - MAC_LEN;

/// An NFSv3 file handle as sent on the wire (at most [`FHSIZE`] bytes), verified or not: it
/// grants nothing until [`ExportKey::verify`] has checked it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileHandle(Bytes);

impl FileHandle {
    /// The handle a client sent, for the protocol layer (any bytes: it is checked later).
    pub fn from_wire(raw: Bytes) -> FileHandle {
        FileHandle(raw)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The wire bytes (a reference-counted clone, no copy), for encoding replies.
    pub fn to_bytes(&self) -> Bytes {
        self.0.clone()
    }
}

/// A handle [`ExportKey::verify`] found authentic and current for its export: the only kind of
/// handle a backend is given. Nothing else constructs one (its fields are private, and it is not
/// deserializable or convertible from bytes). It holds the wire bytes (a `Bytes` clone of the
/// request's, not a copy) and reads the backend body out of them.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct VerifiedHandle {
    export_id: u32,
    raw: FileHandle,
}

impl VerifiedHandle {
    /// The export it was verified for.
    pub fn export_id(&self) -> u32 {
        self.export_id
    }

    /// The backend body (what [`seal`] was given).
    pub fn body(&self) -> &[u8] {
        let raw = self.raw.as_bytes();
        // Verification checked the length: HEADER_LEN + MAC_LEN <= len <= FHSIZE.
        &raw[HEADER_LEN..raw.len() - MAC_LEN]
    }

    /// The handle as the client sent it (for replies that echo it, e.g. LOOKUP of `.`).
    pub fn handle(&self) -> &FileHandle {
        &self.raw
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.raw.as_bytes()
    }
}

impl fmt::Debug for VerifiedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Verified{:?}", self.raw)
    }
}

impl fmt::Debug for FileHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FileHandle(")?;
        for b in self.0.iter() {
            write!(f, "{b:02x}")?;
        }
        write!(f, ")")
    }
}

/// The export a raw handle claims to belong to, read from its unauthenticated prefix so the server
/// can route a request to the right export (whose key then verifies the whole handle). `None` when the
/// handle cannot be a valid one (wrong length or layout version). A handle of the retired
/// layout names its export too (it is refused there as stale).
pub fn export_id(raw: &[u8]) -> Option<u32> {
    let layout_known = matches!(
        raw.first(),
        Some(&(LAYOUT_VERSION | RETIRED_LAYOUT_VERSION))
    );
    if raw.len() < HEADER_LEN + MAC_LEN || raw.len() > FHSIZE || !layout_known {
        return None;
    }
    Some(u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]))
}

/// The server's secret for handle MACs.
#[derive(Clone)]
pub struct HandleKey([u8; 32]);

impl fmt::Debug for HandleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HandleKey(..)")
    }
}

/// File name of the key inside the state directory.
pub const KEY_FILE: &str = "handle.key";

impl HandleKey {
    pub fn from_bytes(bytes: [u8; 32]) -> HandleKey {
        HandleKey(bytes)
    }

    /// A fresh key from the kernel's random source.
    pub fn random() -> io::Result<HandleKey> {
        let mut k = [0u8; 32];
        fs::File::open("/dev/urandom")?.read_exact(&mut k)?;
        Ok(HandleKey(k))
    }

    /// Reads `state_dir/handle.key`, or creates it (mode 0600, in a 0700 directory created if missing)
    /// with a random key. Creation is atomic and race-free: the key is written and synced under a
    /// temporary name, then published with `link(2)`, which fails if another process published first
    /// (then its key is used). A key file of the wrong size is an error, never silently replaced:
    /// replacing it would invalidate every handle clients hold.
    pub fn load_or_create(state_dir: &Path) -> io::Result<HandleKey> {
        let path = state_dir.join(KEY_FILE);
        match Self::load(&path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            other => return other,
        }
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(state_dir)?;
        let key = HandleKey::random()?;
        let (tmp, mut f) = create_temp(state_dir)?;
        let written = f.write_all(&key.0).and_then(|()| f.sync_all());
        drop(f);
        let published = written.and_then(|()| fs::hard_link(&tmp, &path));
        let _ = fs::remove_file(&tmp);
        match published {
            Ok(()) => {
                // Make the new directory entry durable too.
                fs::File::open(state_dir)?.sync_all()?;
                Ok(key)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Self::load(&path),
            Err(e) => Err(e),
        }
    }

    fn load(path: &Path) -> io::Result<HandleKey> {
        let mut f = fs::File::open(path)?;
        let meta = f.metadata()?;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "handle key file is accessible to group or others");
        }
        let mut k = [0u8; 32];
        let mut extra = [0u8; 1];
        f.read_exact(&mut k).map_err(|_| bad_key_file(path))?;
        if f.read(&mut extra)? != 0 {
            return Err(bad_key_file(path));
        }
        Ok(HandleKey(k))
    }

    /// The key of export `export_id` rooted at the directory whose kernel handle (as a handle
    /// body) is `root_handle` and whose path is `root_path`. The path is needed besides the
    /// handle: the roots of two file systems of one kind often have the same kernel handle
    /// (ext4's is inode 2, generation 0).
    pub fn for_export(&self, export_id: u32, root_handle: &[u8], root_path: &[u8]) -> ExportKey {
        let mut h = blake3::Hasher::new_derive_key(EXPORT_KEY_CONTEXT);
        h.update(&self.0);
        h.update(&export_id.to_be_bytes());
        // Length-prefixed, so that no two (handle, path) pairs give the same input.
        h.update(&(root_handle.len() as u64).to_be_bytes());
        h.update(root_handle);
        h.update(&(root_path.len() as u64).to_be_bytes());
        h.update(root_path);
        ExportKey {
            server: self.clone(),
            export: *h.finalize().as_bytes(),
        }
    }
}

/// The keys that seal one export's handles: the server's (the server tag) and the export's own,
/// derived from it and the export's root ([`HandleKey::for_export`]; the export tag).
#[derive(Clone)]
pub struct ExportKey {
    server: HandleKey,
    export: [u8; 32],
}

impl fmt::Debug for ExportKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ExportKey(..)")
    }
}

fn tag(key: &[u8; 32], data: &[u8]) -> [u8; TAG_LEN] {
    let h = blake3::keyed_hash(key, data);
    let mut out = [0u8; TAG_LEN];
    out.copy_from_slice(&h.as_bytes()[..TAG_LEN]);
    out
}

/// A new 0600 file with a name unique to this process and call.
fn create_temp(dir: &Path) -> io::Result<(std::path::PathBuf, fs::File)> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{KEY_FILE}.{}.{n}.tmp", std::process::id()));
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            // A leftover of a crashed process that had our pid: take the next name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

fn bad_key_file(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: not a 32-byte handle key", path.display()),
    )
}

/// Builds the handle for `body` in export `export_id` (whose key is `key`).
///
/// # Panics
/// If `body` is longer than [`MAX_BODY`]: backends check their body size up front.
pub fn seal(key: &ExportKey, export_id: u32, body: &[u8]) -> FileHandle {
    assert!(
        body.len() <= MAX_BODY,
        "file handle body of {} bytes does not fit",
        body.len()
    );
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len() + MAC_LEN);
    b.put_u8(LAYOUT_VERSION);
    b.put_u32(export_id);
    b.put_slice(body);
    let export_tag = tag(&key.export, &b);
    b.put_slice(&export_tag);
    let server_tag = tag(&key.server.0, &b);
    b.put_slice(&server_tag);
    FileHandle(b.freeze())
}

impl ExportKey {
    /// Verifies `fh` as a handle of export `export_id` (whose key this is). Anything malformed,
    /// of another export or with a wrong server tag is [`Error::BadHandle`]; a handle this server
    /// issued for an earlier root of the export (a wrong export tag), or in the retired layout,
    /// is [`Error::Stale`].
    pub fn verify(&self, export_id: u32, fh: &FileHandle) -> Result<VerifiedHandle> {
        self.verify_owned(export_id, fh.clone())
    }

    /// [`ExportKey::verify`] of a handle the caller is done with (it moves into the result:
    /// no reference-count traffic on the request path).
    pub fn verify_owned(&self, export_id: u32, fh: FileHandle) -> Result<VerifiedHandle> {
        open(self, export_id, fh.as_bytes())?;
        Ok(VerifiedHandle { export_id, raw: fh })
    }
}

/// The checks of [`ExportKey::verify`]; returns the body.
fn open<'a>(key: &ExportKey, expected_export_id: u32, raw: &'a [u8]) -> Result<&'a [u8]> {
    if export_id(raw) != Some(expected_export_id) {
        return Err(Error::BadHandle);
    }
    if raw[0] == RETIRED_LAYOUT_VERSION {
        return Err(Error::Stale);
    }
    let (tagged, server_tag) = raw.split_at(raw.len() - TAG_LEN);
    if !constant_time_eq(&tag(&key.server.0, tagged), server_tag) {
        return Err(Error::BadHandle);
    }
    let (signed, export_tag) = tagged.split_at(tagged.len() - TAG_LEN);
    if !constant_time_eq(&tag(&key.export, signed), export_tag) {
        return Err(Error::Stale);
    }
    Ok(&signed[HEADER_LEN..])
}

/// Compares without an early exit, so timing does not tell how many leading bytes matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh server key's key for export `id` rooted at `/export`.
    fn export_key(id: u32) -> ExportKey {
        HandleKey::random()
            .unwrap()
            .for_export(id, b"root-handle", b"/export")
    }

    #[test]
    fn seal_open_round_trip() {
        let k = export_key(0xdead_beef);
        for len in [0, 1, 12, MAX_BODY] {
            let body: Vec<u8> = (0..len as u8).collect();
            let fh = seal(&k, 0xdead_beef, &body);
            assert_eq!(fh.0.len(), HEADER_LEN + len + MAC_LEN);
            assert!(fh.0.len() <= FHSIZE);
            assert_eq!(export_id(&fh.0), Some(0xdead_beef));
            assert_eq!(open(&k, 0xdead_beef, &fh.0).unwrap(), &body[..]);
        }
    }

    #[test]
    fn every_flipped_bit_is_refused() {
        let k = export_key(7);
        let fh = seal(&k, 7, b"kernel-handle-bytes");
        for i in 0..fh.0.len() * 8 {
            let mut raw = fh.0.to_vec();
            raw[i / 8] ^= 1 << (i % 8);
            assert_eq!(open(&k, 7, &raw), Err(Error::BadHandle), "bit {i}");
        }
    }

    #[test]
    fn malformed_and_foreign_refused() {
        let k = export_key(7);
        let fh = seal(&k, 7, b"body");
        assert_eq!(open(&k, 8, &fh.0), Err(Error::BadHandle));
        assert_eq!(open(&export_key(7), 7, &fh.0), Err(Error::BadHandle));
        for n in 0..fh.0.len() {
            assert_eq!(open(&k, 7, &fh.0[..n]), Err(Error::BadHandle));
        }
        let mut long = fh.0.to_vec();
        long.resize(FHSIZE + 1, 0);
        assert_eq!(open(&k, 7, &long), Err(Error::BadHandle));
        assert_eq!(export_id(&long), None);
        let mut v3 = fh.0.to_vec();
        v3[0] = 3;
        assert_eq!(export_id(&v3), None);
    }

    /// Another root for the same export id and server key: the handles of the old root are
    /// stale (this server issued them; they no longer hold), and the retired layout is too.
    #[test]
    fn handles_of_another_root_or_layout_are_stale() {
        let server = HandleKey::random().unwrap();
        let old = server.for_export(9, b"root-handle", b"/x");
        let fh = seal(&old, 9, b"body");
        for new in [
            server.for_export(9, b"root-handle", b"/x/sub"),
            server.for_export(9, b"other-root", b"/x"),
            server.for_export(8, b"root-handle", b"/x"),
        ] {
            assert_eq!(open(&new, 9, &fh.0), Err(Error::Stale));
        }
        // Field boundaries are part of the key: moving a byte from handle to path changes it.
        let shifted = server.for_export(9, b"root-handl", b"e/x");
        assert_eq!(open(&shifted, 9, &fh.0), Err(Error::Stale));
        assert_eq!(open(&old, 9, &fh.0), Ok(&b"body"[..]));
        let mut v1 = fh.0.to_vec();
        v1[0] = RETIRED_LAYOUT_VERSION;
        assert_eq!(export_id(&v1), Some(9));
        assert_eq!(open(&old, 9, &v1), Err(Error::Stale));
    }

    /// `verify` answers as `open` does, and the verified handle gives back the body and bytes.
    #[test]
    fn verify_gives_body_and_wire_bytes() {
        let k = export_key(7);
        let fh = seal(&k, 7, b"body");
        let v = k.verify(7, &fh).unwrap();
        assert_eq!(
            (v.export_id(), v.body(), v.handle()),
            (7, &b"body"[..], &fh)
        );
        assert_eq!(k.verify(8, &fh), Err(Error::BadHandle));
        let mut v1 = fh.as_bytes().to_vec();
        v1[0] = RETIRED_LAYOUT_VERSION;
        assert_eq!(
            k.verify(7, &FileHandle::from_wire(v1.into())),
            Err(Error::Stale)
        );
        let empty = FileHandle::from_wire(Bytes::new());
        assert_eq!(k.verify(7, &empty), Err(Error::BadHandle));
    }

    #[test]
    fn key_persists() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let k1 = HandleKey::load_or_create(&state).unwrap();
        let k2 = HandleKey::load_or_create(&state).unwrap();
        assert_eq!(k1.0, k2.0);
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&state), 0o700);
        assert_eq!(mode(&state.join(KEY_FILE)), 0o600);
        // Only the key file is left behind.
        assert_eq!(fs::read_dir(&state).unwrap().count(), 1);
        // A damaged key file is reported, not replaced.
        fs::write(state.join(KEY_FILE), b"short").unwrap();
        assert_eq!(
            HandleKey::load_or_create(&state).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }

    #[test]
    fn concurrent_creation_agrees() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_path_buf();
        let keys: Vec<[u8; 32]> = (0..4)
            .map(|_| {
                let s = state.clone();
                std::thread::spawn(move || HandleKey::load_or_create(&s).unwrap().0)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(keys.windows(2).all(|w| w[0] == w[1]));
    }
}
