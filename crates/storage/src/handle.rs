//! File handles: the opaque `nfs_fh3` the server hands out (RFC 1813 §2.3.3, §2.5).
//!
//! # Layout (version 1)
//! ```text
//! byte 0        layout version (1)
//! bytes 1..5    export id, u32 big-endian         -- readable without the key, for routing
//! bytes 5..n-16 backend body (at most MAX_BODY bytes)
//! bytes n-16..n MAC: first 16 bytes of blake3::keyed_hash(key, bytes[0..n-16])
//! ```
//! The whole handle is at most `NFS3_FHSIZE` = 64 bytes.
//!
//! # Why a MAC
//! A handle is a capability: whoever presents one skips the directory permission checks on the path to
//! the object (the backend opens objects by kernel handle, as root). Kernel handles are guessable
//! (inode + generation), so without a MAC a client could reach files outside its export or in
//! directories it may not search. The keyed MAC makes handles unforgeable; the key is persisted
//! ([`HandleKey::load_or_create`]) so handles stay valid across restarts, as RFC 1813 §2.3.3 expects
//! of a handle for an object that still exists. A handle that fails verification is
//! [`Error::BadHandle`]; the MAC is compared in constant time.

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
pub const LAYOUT_VERSION: u8 = 1;
/// Version byte plus export id.
pub const HEADER_LEN: usize = 5;
/// Length of the truncated MAC.
pub const MAC_LEN: usize = 16;
/// Largest backend body that fits.
pub const MAX_BODY: usize = FHSIZE - HEADER_LEN - MAC_LEN;

/// An NFSv3 file handle as sent on the wire (at most [`FHSIZE`] bytes).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct FileHandle(pub Bytes);

impl FileHandle {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
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
/// can route a request to the right backend (which then verifies the whole handle). `None` when the
/// handle cannot be a valid one (wrong length or layout version).
pub fn export_id(raw: &[u8]) -> Option<u32> {
    if raw.len() < HEADER_LEN + MAC_LEN || raw.len() > FHSIZE || raw[0] != LAYOUT_VERSION {
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

    fn mac(&self, data: &[u8]) -> [u8; MAC_LEN] {
        let h = blake3::keyed_hash(&self.0, data);
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&h.as_bytes()[..MAC_LEN]);
        out
    }
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

/// Builds the handle for `body` in export `export_id`.
///
/// # Panics
/// If `body` is longer than [`MAX_BODY`]: backends check their body size up front.
pub fn seal(key: &HandleKey, export_id: u32, body: &[u8]) -> FileHandle {
    assert!(
        body.len() <= MAX_BODY,
        "file handle body of {} bytes does not fit",
        body.len()
    );
    let mut b = BytesMut::with_capacity(HEADER_LEN + body.len() + MAC_LEN);
    b.put_u8(LAYOUT_VERSION);
    b.put_u32(export_id);
    b.put_slice(body);
    let mac = key.mac(&b);
    b.put_slice(&mac);
    FileHandle(b.freeze())
}

/// Verifies `raw` as a handle of export `expected_export_id` and returns its body. Anything malformed,
/// of another export or with a wrong MAC is [`Error::BadHandle`].
pub fn open<'a>(key: &HandleKey, expected_export_id: u32, raw: &'a [u8]) -> Result<&'a [u8]> {
    if export_id(raw) != Some(expected_export_id) {
        return Err(Error::BadHandle);
    }
    let (signed, mac) = raw.split_at(raw.len() - MAC_LEN);
    if !constant_time_eq(&key.mac(signed), mac) {
        return Err(Error::BadHandle);
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

    #[test]
    fn seal_open_round_trip() {
        let k = HandleKey::random().unwrap();
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
        let k = HandleKey::random().unwrap();
        let fh = seal(&k, 7, b"kernel-handle-bytes");
        for i in 0..fh.0.len() * 8 {
            let mut raw = fh.0.to_vec();
            raw[i / 8] ^= 1 << (i % 8);
            assert_eq!(open(&k, 7, &raw), Err(Error::BadHandle), "bit {i}");
        }
    }

    #[test]
    fn malformed_and_foreign_refused() {
        let k = HandleKey::random().unwrap();
        let fh = seal(&k, 7, b"body");
        assert_eq!(open(&k, 8, &fh.0), Err(Error::BadHandle));
        assert_eq!(
            open(&HandleKey::random().unwrap(), 7, &fh.0),
            Err(Error::BadHandle)
        );
        for n in 0..fh.0.len() {
            assert_eq!(open(&k, 7, &fh.0[..n]), Err(Error::BadHandle));
        }
        let mut long = fh.0.to_vec();
        long.resize(FHSIZE + 1, 0);
        assert_eq!(open(&k, 7, &long), Err(Error::BadHandle));
        assert_eq!(export_id(&long), None);
        let mut v2 = fh.0.to_vec();
        v2[0] = 2;
        assert_eq!(export_id(&v2), None);
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
