//! Helpers shared by the write-side and security tests (`libnfs_write`, `write_semantics`,
//! `differential`, `durability`, `security`): clients as a given user, NFS status extraction,
//! errno ↔ `nfsstat3`, acting as a user locally (per-thread fsuid, as the server does), and tree
//! snapshots taken from the local file system or through NFS, with a comparison that names every
//! difference.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use bytes::Bytes;
use rnfs_client::nfs3::{
    diropargs3, fattr3, filename3, ftype3, nfs_fh3, nfsstat3, sattr3, set_atime, set_mtime,
    wcc_data,
};
use rnfs_client::{Client, Error};

use crate::common::TestServer;

/// A TCP client claiming AUTH_SYS `uid`/`gid` (and `gid` as its only supplementary group).
pub fn tcp_as(srv: &TestServer, uid: u32, gid: u32) -> Client {
    Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(uid, gid, &[gid])
}

/// MNT of the test server's export on `c`; panics with the status on failure.
pub fn mount_root(c: &mut Client, srv: &TestServer) -> nfs_fh3 {
    c.mount(srv.mount_path().as_bytes())
        .unwrap_or_else(|e| panic!("MNT {} failed: {e}", srv.mount_path()))
}

/// The NFS status of a failed typed call; panics on success or on a non-NFS error.
#[track_caller]
pub fn nfs_err<T: std::fmt::Debug>(r: Result<T, Error>) -> nfsstat3 {
    match r {
        Err(Error::Nfs(s)) => s,
        other => panic!("expected an NFS error status, got {other:?}"),
    }
}

/// The handle of `name` in `dir`; panics if LOOKUP fails.
#[track_caller]
pub fn fh_of(c: &mut Client, dir: &nfs_fh3, name: &str) -> nfs_fh3 {
    c.lookup(dir, name.as_bytes())
        .unwrap_or_else(|e| panic!("LOOKUP {name}: {e}"))
        .object
}

/// Resolves a `/`-separated relative path from `root`, one LOOKUP per component.
pub fn resolve(c: &mut Client, root: &nfs_fh3, path: &str) -> Result<nfs_fh3, Error> {
    let mut fh = root.clone();
    for comp in path.split('/').filter(|s| !s.is_empty()) {
        fh = c.lookup(&fh, comp.as_bytes())?.object;
    }
    Ok(fh)
}

/// A file name argument.
pub fn name(s: &str) -> filename3 {
    rnfs_xdr::Opaque(Bytes::copy_from_slice(s.as_bytes()))
}

/// A (directory, name) argument.
pub fn dirop(dir: &nfs_fh3, n: &str) -> diropargs3 {
    diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

/// `sattr3` setting only the mode.
pub fn mode_attr(mode: u32) -> sattr3 {
    sattr3 {
        mode: Some(mode),
        ..Default::default()
    }
}

/// `sattr3` setting only the size.
pub fn size_attr(size: u64) -> sattr3 {
    sattr3 {
        size: Some(size),
        ..Default::default()
    }
}

/// `sattr3` setting both times to a client time.
pub fn times_attr(t: rnfs_client::nfs3::nfstime3) -> sattr3 {
    sattr3 {
        atime: set_atime::SetToClientTime(t),
        mtime: set_mtime::SetToClientTime(t),
        ..Default::default()
    }
}

/// The whole content of a file through READ (1 MiB at a time).
pub fn read_all(c: &mut Client, fh: &nfs_fh3) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    loop {
        let r = c.read(fh, out.len() as u64, 1 << 20)?;
        assert_eq!(
            r.count as usize,
            r.data.len(),
            "READ count disagrees with its data"
        );
        out.extend_from_slice(r.data.as_bytes());
        if r.eof {
            return Ok(out);
        }
        assert!(r.count > 0, "empty READ without eof at {}", out.len());
    }
}

/// Writes `data` at `offset` with FILE_SYNC, in pieces of at most 1 MiB (one empty WRITE for
/// empty data).
pub fn write_all(c: &mut Client, fh: &nfs_fh3, offset: u64, data: &[u8]) -> Result<(), Error> {
    let mut done = 0usize;
    loop {
        let n = (data.len() - done).min(1 << 20);
        let r = c.write(
            fh,
            offset + done as u64,
            Bytes::copy_from_slice(&data[done..done + n]),
            rnfs_client::nfs3::stable_how::FILE_SYNC,
        )?;
        assert!(r.count as usize <= n, "WRITE claims more than was sent");
        assert!(n == 0 || r.count > 0, "WRITE of {n} bytes wrote nothing");
        done += r.count as usize;
        if done >= data.len() {
            return Ok(());
        }
    }
}

// -------------------------------------------------------------------------------------------------
// errno ↔ nfsstat3

/// The NFS status RFC 1813 §2.6 gives for an errno (the Linux numbers; most are equal).
pub fn errno_to_nfs(errno: i32) -> Option<nfsstat3> {
    use nfsstat3::*;
    Some(match errno {
        libc::EPERM => NFS3ERR_PERM,
        libc::ENOENT => NFS3ERR_NOENT,
        libc::EIO => NFS3ERR_IO,
        libc::ENXIO => NFS3ERR_NXIO,
        libc::EACCES => NFS3ERR_ACCES,
        libc::EEXIST => NFS3ERR_EXIST,
        libc::EXDEV => NFS3ERR_XDEV,
        libc::ENODEV => NFS3ERR_NODEV,
        libc::ENOTDIR => NFS3ERR_NOTDIR,
        libc::EISDIR => NFS3ERR_ISDIR,
        libc::EINVAL => NFS3ERR_INVAL,
        libc::EFBIG => NFS3ERR_FBIG,
        libc::ENOSPC => NFS3ERR_NOSPC,
        libc::EROFS => NFS3ERR_ROFS,
        libc::EMLINK => NFS3ERR_MLINK,
        libc::ENAMETOOLONG => NFS3ERR_NAMETOOLONG,
        libc::ENOTEMPTY => NFS3ERR_NOTEMPTY,
        libc::EDQUOT => NFS3ERR_DQUOT,
        libc::ESTALE => NFS3ERR_STALE,
        _ => return None,
    })
}

/// [`errno_to_nfs`] of an I/O error (panics on an error without errno or without NFS status).
#[track_caller]
pub fn io_to_nfs(e: &std::io::Error) -> nfsstat3 {
    let errno = e
        .raw_os_error()
        .unwrap_or_else(|| panic!("local error without errno: {e}"));
    errno_to_nfs(errno).unwrap_or_else(|| panic!("no NFS status for local error {e}"))
}

// -------------------------------------------------------------------------------------------------
// Acting as a user locally

/// Makes this thread's file-system identity `uid`/`gid` until dropped (Linux `setfsuid` and
/// `setfsgid` are per thread, unlike `setuid`): local reference operations then meet the same
/// permission checks the server applies for a caller with that identity. Needs root.
pub struct AsUser {
    _not_send: std::marker::PhantomData<*const ()>,
}

impl AsUser {
    pub fn new(uid: u32, gid: u32) -> AsUser {
        // SAFETY: setfsgid/setfsuid change only the calling thread's credentials; they cannot fail
        // in a way that touches memory. The order (gid first) keeps the right to change the gid.
        unsafe {
            libc::setfsgid(gid);
            libc::setfsuid(uid);
            assert_eq!(
                libc::setfsuid(u32::MAX) as u32,
                uid,
                "setfsuid({uid}) failed"
            );
            assert_eq!(
                libc::setfsgid(u32::MAX) as u32,
                gid,
                "setfsgid({gid}) failed"
            );
        }
        AsUser {
            _not_send: std::marker::PhantomData,
        }
    }
}

impl Drop for AsUser {
    fn drop(&mut self) {
        // SAFETY: as in `new`; back to root's identity (CAP_SETUID is not an fs capability, so
        // dropping the fsuid did not lose it).
        unsafe {
            libc::setfsuid(0);
            libc::setfsgid(0);
        }
    }
}

// -------------------------------------------------------------------------------------------------
// Tree snapshots

/// What a tree entry is, with what the comparison looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A regular file and its content.
    File(Vec<u8>),
    /// A directory (its size is file-system bookkeeping and not compared).
    Dir,
    /// A symbolic link and its target.
    Symlink(Vec<u8>),
    /// Anything else, by type name.
    Other(&'static str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: Kind,
    /// Permission bits (`& 0o7777`).
    pub mode: u32,
    pub nlink: u64,
    /// Size in bytes (0 for directories, whose size is not compared).
    pub size: u64,
}

/// Relative path → node, for every entry below the root (the root itself is "").
pub type Tree = BTreeMap<String, Node>;

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// The tree below `root` on the local file system (read with the thread's current identity).
pub fn local_tree(root: &Path) -> Tree {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    fn node(path: &Path) -> Node {
        let m = std::fs::symlink_metadata(path).unwrap();
        let ft = m.file_type();
        let kind = if ft.is_file() {
            Kind::File(std::fs::read(path).unwrap())
        } else if ft.is_dir() {
            Kind::Dir
        } else if ft.is_symlink() {
            use std::os::unix::ffi::OsStrExt;
            Kind::Symlink(
                std::fs::read_link(path)
                    .unwrap()
                    .as_os_str()
                    .as_bytes()
                    .to_vec(),
            )
        } else if ft.is_fifo() {
            Kind::Other("fifo")
        } else if ft.is_socket() {
            Kind::Other("socket")
        } else if ft.is_char_device() {
            Kind::Other("chr")
        } else {
            Kind::Other("blk")
        };
        Node {
            size: if ft.is_dir() { 0 } else { m.size() },
            kind,
            mode: m.mode() & 0o7777,
            nlink: m.nlink(),
        }
    }
    fn walk(dir: &Path, prefix: &str, out: &mut Tree) {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        for name in names {
            let p = dir.join(&name);
            let rel = join(prefix, &name);
            let n = node(&p);
            let is_dir = n.kind == Kind::Dir;
            out.insert(rel.clone(), n);
            if is_dir {
                walk(&p, &rel, out);
            }
        }
    }
    let mut out = Tree::new();
    out.insert(String::new(), node(root));
    walk(root, "", &mut out);
    out
}

fn node_of(attr: &fattr3, kind: Kind) -> Node {
    Node {
        size: if attr.r#type == ftype3::NF3DIR {
            0
        } else {
            attr.size
        },
        kind,
        mode: attr.mode & 0o7777,
        nlink: u64::from(attr.nlink),
    }
}

/// The tree below `root` as the server shows it: READDIRPLUS, GETATTR, READ and READLINK. Every
/// directory must be listable by the client's identity.
pub fn nfs_tree(c: &mut Client, root: &nfs_fh3) -> Tree {
    fn kind_of(c: &mut Client, fh: &nfs_fh3, attr: &fattr3, path: &str) -> Kind {
        match attr.r#type {
            ftype3::NF3REG => {
                let data =
                    read_all(c, fh).unwrap_or_else(|e| panic!("READ of {path:?} failed: {e}"));
                Kind::File(data)
            }
            ftype3::NF3DIR => Kind::Dir,
            ftype3::NF3LNK => Kind::Symlink(
                c.readlink(fh)
                    .unwrap_or_else(|e| panic!("READLINK of {path:?} failed: {e}"))
                    .to_vec(),
            ),
            ftype3::NF3FIFO => Kind::Other("fifo"),
            ftype3::NF3SOCK => Kind::Other("socket"),
            ftype3::NF3CHR => Kind::Other("chr"),
            ftype3::NF3BLK => Kind::Other("blk"),
        }
    }
    fn walk(c: &mut Client, dir: &nfs_fh3, prefix: &str, out: &mut Tree) {
        let entries = c
            .readdirplus(dir)
            .unwrap_or_else(|e| panic!("READDIRPLUS of {prefix:?} failed: {e}"));
        for e in entries {
            let name = String::from_utf8(e.name.as_bytes().to_vec()).unwrap();
            if name == "." || name == ".." {
                continue;
            }
            let rel = join(prefix, &name);
            // Handle and attributes from READDIRPLUS when given, else by LOOKUP; GETATTR must
            // agree with what READDIRPLUS said.
            let fh = match e.name_handle {
                Some(fh) => fh,
                None => fh_of(c, dir, &name),
            };
            let attr = c
                .getattr(&fh)
                .unwrap_or_else(|err| panic!("GETATTR of {rel:?} failed: {err}"));
            if let Some(a) = &e.name_attributes {
                assert_eq!(
                    (a.r#type, a.mode, a.fileid, a.size, a.nlink),
                    (attr.r#type, attr.mode, attr.fileid, attr.size, attr.nlink),
                    "READDIRPLUS and GETATTR disagree on {rel:?}"
                );
            }
            let kind = kind_of(c, &fh, &attr, &rel);
            let is_dir = kind == Kind::Dir;
            out.insert(rel.clone(), node_of(&attr, kind));
            if out.len() > 100_000 {
                panic!("more than 100,000 entries: a directory loop?");
            }
            if is_dir {
                walk(c, &fh, &rel, out);
            }
        }
    }
    let mut out = Tree::new();
    let attr = c.getattr(root).unwrap();
    out.insert(String::new(), node_of(&attr, Kind::Dir));
    walk(c, root, "", &mut out);
    out
}

fn describe(n: &Node) -> String {
    let kind = match &n.kind {
        Kind::File(d) => format!("file ({} bytes)", d.len()),
        Kind::Dir => "dir".to_owned(),
        Kind::Symlink(t) => format!("symlink -> {:?}", String::from_utf8_lossy(t)),
        Kind::Other(k) => (*k).to_owned(),
    };
    format!(
        "{kind}, mode {:04o}, nlink {}, size {}",
        n.mode, n.nlink, n.size
    )
}

/// Every difference between two trees, in words (empty when they are equal).
pub fn tree_diff(want: &Tree, got: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, w) in want {
        match got.get(path) {
            None => out.push(format!("{path:?}: missing (expected {})", describe(w))),
            Some(g) if g != w => {
                let mut s = format!("{path:?}: expected {}, got {}", describe(w), describe(g));
                if let (Kind::File(a), Kind::File(b)) = (&w.kind, &g.kind) {
                    if let Some(i) = a.iter().zip(b).position(|(x, y)| x != y) {
                        let _ = write!(s, "; content differs first at byte {i}");
                    }
                }
                out.push(s);
            }
            Some(_) => {}
        }
    }
    for (path, g) in got {
        if !want.contains_key(path) {
            out.push(format!("{path:?}: unexpected ({})", describe(g)));
        }
    }
    out
}

/// Panics listing the differences (at most 40) when the trees differ.
#[track_caller]
pub fn assert_same_tree(what: &str, want: &Tree, got: &Tree) {
    let diff = tree_diff(want, got);
    if !diff.is_empty() {
        let shown: Vec<&String> = diff.iter().take(40).collect();
        panic!(
            "{what}: {} difference(s) in {} entries:\n  {}",
            diff.len(),
            want.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n  ")
        );
    }
}

/// Checks a reply's wcc data: post-operation attributes are present (and are a directory's when
/// `dir`), and if pre-operation attributes are present they are older or equal.
#[track_caller]
pub fn check_wcc(what: &str, w: &wcc_data, dir: bool) -> fattr3 {
    let after = w
        .after
        .clone()
        .unwrap_or_else(|| panic!("{what}: wcc_data without post-operation attributes: {w:?}"));
    if dir {
        assert_eq!(
            after.r#type,
            ftype3::NF3DIR,
            "{what}: post-op attributes not a directory's"
        );
    }
    if let Some(b) = &w.before {
        assert!(
            b.ctime <= after.ctime,
            "{what}: pre-op ctime {:?} after post-op ctime {:?}",
            b.ctime,
            after.ctime
        );
    }
    after
}
