//! Write-side semantics of the `rnfsd` binary through the in-repo client (`rnfs-client`, TCP):
//!
//! * the namespace procedures (CREATE, MKDIR, SYMLINK, MKNOD, LINK, RENAME, REMOVE, RMDIR) applied
//!   to a tree through NFS and, as the same user, to a local reference directory with the same
//!   system calls a local program would use; the resulting trees must be identical (names, types,
//!   sizes, modes, link counts, symlink targets, contents), failures must fail alike, and every
//!   reply must carry wcc data whose directory mtime moved (or, for a refused change, did not);
//! * exclusive, guarded and unchecked CREATE; SETATTR guards; WRITE and SETATTR size details.
//!
//! Local reference operations run with the thread's fsuid/fsgid set to the NFS caller's uid/gid
//! (see `nfsutil::AsUser`), which is how the server itself runs each request: the tests need root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod nfsutil;

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::*;
use nfsutil::*;
use rnfs_client::nfs3::*;
use rnfs_client::{Client, ReplyStatus};
use rnfs_xdr::{Decoder, Opaque, XdrDecode};

/// The uid/gid every operation runs as, on both sides.
const UID: u32 = USER;
const GID: u32 = USER;

/// A directory mtime no operation can produce: set before each change, so "the mtime moved" does
/// not depend on the clock's granularity.
const OLD: nfstime3 = nfstime3 {
    seconds: 1_000_000_000,
    nseconds: 0,
};

/// A server whose export belongs to [`UID`], a reference directory beside it owned likewise, and a
/// client acting as [`UID`].
struct Pair {
    srv: TestServer,
    c: Client,
    root: nfs_fh3,
    reference: PathBuf,
}

impl Pair {
    fn new() -> Pair {
        require_root("rnfsd needs CAP_DAC_READ_SEARCH, and the reference side acts as uid 1000 with setfsuid");
        let mut srv = TestServer::new();
        chown(srv.export(), UID, GID);
        let reference = srv.scratch().join("reference");
        std::fs::create_dir(&reference).unwrap();
        set_mode(&reference, 0o755);
        chown(&reference, UID, GID);
        srv.start();
        let mut c = tcp_as(&srv, UID, GID);
        let root = mount_root(&mut c, &srv);
        Pair {
            srv,
            c,
            root,
            reference,
        }
    }

    fn fh(&mut self, path: &str) -> nfs_fh3 {
        resolve(&mut self.c, &self.root, path)
            .unwrap_or_else(|e| panic!("resolving {path:?} through NFS: {e}"))
    }

    fn local(&self, path: &str) -> PathBuf {
        if path.is_empty() {
            self.reference.clone()
        } else {
            self.reference.join(path)
        }
    }

    /// Sets `dir`'s times to [`OLD`] on the server.
    fn age(&mut self, dir: &nfs_fh3) {
        self.c
            .setattr(dir, times_attr(OLD), None)
            .unwrap_or_else(|e| panic!("SETATTR times of a directory: {e}"));
    }

    /// Runs the reference side of an operation as [`UID`].
    fn as_user<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let _id = AsUser::new(UID, GID);
        f()
    }

    /// Both trees, compared: the export on disk and through NFS against the reference.
    fn compare(&mut self, when: &str) {
        let want = local_tree(&self.reference);
        let on_disk = local_tree(self.srv.export());
        // The roots differ only in what the test set up identically; compare them too.
        assert_same_tree(&format!("{when}: export on disk"), &want, &on_disk);
        let via_nfs = nfs_tree(&mut self.c, &self.root);
        assert_same_tree(&format!("{when}: export through NFS"), &want, &via_nfs);
    }
}

/// Asserts that NFS and the local system call agreed: both succeeded, or both failed with the
/// corresponding status. Returns whether they succeeded.
#[track_caller]
fn agree<A, B: std::fmt::Debug>(
    what: &str,
    nfs: Result<A, nfsstat3>,
    local: io::Result<B>,
) -> bool {
    match (&nfs, &local) {
        (Ok(_), Ok(_)) => true,
        (Err(n), Err(l)) => {
            assert_eq!(
                *n,
                io_to_nfs(l),
                "{what}: NFS said {n}, the local system call said {l}"
            );
            false
        }
        (Ok(_), Err(l)) => panic!("{what}: NFS succeeded, the local system call failed: {l}"),
        (Err(n), Ok(_)) => panic!("{what}: NFS failed with {n}, the local system call succeeded"),
    }
}

/// Checks a directory's wcc data after a change that happened (`changed`) or was refused.
#[track_caller]
fn dir_moved(what: &str, w: &wcc_data, changed: bool) {
    let after = check_wcc(what, w, true);
    if changed {
        assert!(
            after.mtime > OLD,
            "{what}: the directory's mtime did not move: {:?}",
            after.mtime
        );
        if let Some(b) = &w.before {
            assert_eq!(
                b.mtime, OLD,
                "{what}: pre-op mtime is not the one set before"
            );
        }
    } else {
        assert_eq!(
            after.mtime, OLD,
            "{what}: a refused change moved the directory's mtime"
        );
    }
}

fn split(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some((d, n)) => (d, n),
        None => ("", path),
    }
}

// ---- the operations, each on both sides ---------------------------------------------------------

fn mkdir(p: &mut Pair, path: &str, mode: u32) -> bool {
    let (d, name) = split(path);
    let dir = p.fh(d);
    p.age(&dir);
    let args = MKDIR3args {
        r#where: diropargs3 {
            dir,
            name: Opaque(Bytes::copy_from_slice(name.as_bytes())),
        },
        attributes: mode_attr(mode),
    };
    let r: MKDIR3res = p.c.nfs_call(NFSPROC3_MKDIR, &args).unwrap();
    let nfs = match r {
        MKDIR3res::Ok(ok) => {
            dir_moved(&format!("MKDIR {path}"), &ok.dir_wcc, true);
            let a = ok
                .obj_attributes
                .expect("MKDIR without the new directory's attributes");
            assert_eq!(a.r#type, ftype3::NF3DIR);
            assert_eq!(a.mode & 0o7777, mode, "MKDIR {path}: mode not as asked");
            assert_eq!((a.uid, a.gid), (UID, GID), "MKDIR {path}: owner");
            assert!(ok.obj.is_some(), "MKDIR {path}: no handle");
            Ok(())
        }
        MKDIR3res::Fail(s, f) => {
            dir_moved(&format!("MKDIR {path} ({s})"), &f.dir_wcc, false);
            Err(s)
        }
    };
    let local = p.local(path);
    let l = p.as_user(|| {
        std::fs::create_dir(&local)?;
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(mode))
    });
    agree(&format!("MKDIR {path}"), nfs, l)
}

/// CREATE (GUARDED or UNCHECKED, with a mode) then a FILE_SYNC write of `content`.
fn create(p: &mut Pair, path: &str, mode: u32, content: &[u8], guarded: bool) -> bool {
    let (d, name) = split(path);
    let dir = p.fh(d);
    p.age(&dir);
    let attrs = mode_attr(mode);
    let args = CREATE3args {
        r#where: diropargs3 {
            dir,
            name: Opaque(Bytes::copy_from_slice(name.as_bytes())),
        },
        how: if guarded {
            createhow3::Guarded(attrs)
        } else {
            createhow3::Unchecked(attrs)
        },
    };
    let r: CREATE3res = p.c.nfs_call(NFSPROC3_CREATE, &args).unwrap();
    let nfs = match r {
        CREATE3res::Ok(ok) => {
            dir_moved(&format!("CREATE {path}"), &ok.dir_wcc, true);
            let a = ok
                .obj_attributes
                .expect("CREATE without the new file's attributes");
            assert_eq!(a.r#type, ftype3::NF3REG);
            assert_eq!(a.mode & 0o7777, mode, "CREATE {path}: mode not as asked");
            assert_eq!((a.uid, a.gid, a.size), (UID, GID, 0), "CREATE {path}");
            let fh = ok.obj.expect("CREATE without a handle");
            if !content.is_empty() {
                write_all(&mut p.c, &fh, 0, content).unwrap();
            }
            Ok(())
        }
        CREATE3res::Fail(s, f) => {
            dir_moved(&format!("CREATE {path} ({s})"), &f.dir_wcc, false);
            Err(s)
        }
    };
    let local = p.local(path);
    let l = p.as_user(|| {
        let mut o = std::fs::OpenOptions::new();
        o.write(true);
        if guarded {
            o.create_new(true);
        } else {
            o.create(true);
        }
        let f = o.open(&local)?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::FileExt::write_all_at(&f, content, 0)
    });
    agree(&format!("CREATE {path}"), nfs, l)
}

fn symlink(p: &mut Pair, path: &str, target: &str) -> bool {
    let (d, name) = split(path);
    let dir = p.fh(d);
    p.age(&dir);
    let args = SYMLINK3args {
        r#where: diropargs3 {
            dir,
            name: Opaque(Bytes::copy_from_slice(name.as_bytes())),
        },
        symlink: symlinkdata3 {
            symlink_attributes: sattr3::default(),
            symlink_data: Opaque(Bytes::copy_from_slice(target.as_bytes())),
        },
    };
    let r: SYMLINK3res = p.c.nfs_call(NFSPROC3_SYMLINK, &args).unwrap();
    let nfs = match r {
        SYMLINK3res::Ok(ok) => {
            dir_moved(&format!("SYMLINK {path}"), &ok.dir_wcc, true);
            let fh = ok.obj.expect("SYMLINK without a handle");
            assert_eq!(
                p.c.readlink(&fh).unwrap().as_ref(),
                target.as_bytes(),
                "READLINK of the new symlink {path}"
            );
            if let Some(a) = ok.obj_attributes {
                assert_eq!(a.r#type, ftype3::NF3LNK);
                assert_eq!(a.size, target.len() as u64);
            }
            Ok(())
        }
        SYMLINK3res::Fail(s, f) => {
            dir_moved(&format!("SYMLINK {path} ({s})"), &f.dir_wcc, false);
            Err(s)
        }
    };
    let local = p.local(path);
    let l = p.as_user(|| std::os::unix::fs::symlink(target, &local));
    agree(&format!("SYMLINK {path} -> {target}"), nfs, l)
}

fn mkfifo(p: &mut Pair, path: &str, mode: u32) -> bool {
    let (d, name) = split(path);
    let dir = p.fh(d);
    p.age(&dir);
    let nfs = match p
        .c
        .mknod(&dir, name.as_bytes(), mknoddata3::Fifo(mode_attr(mode)))
    {
        Ok(ok) => {
            dir_moved(&format!("MKNOD {path}"), &ok.dir_wcc, true);
            let a = ok.obj_attributes.expect("MKNOD without attributes");
            assert_eq!(a.r#type, ftype3::NF3FIFO);
            assert_eq!(a.mode & 0o7777, mode, "MKNOD {path}: mode not as asked");
            Ok(())
        }
        Err(rnfs_client::Error::Nfs(s)) => Err(s),
        Err(e) => panic!("MKNOD {path}: {e}"),
    };
    let local = p.local(path);
    let l = p.as_user(|| {
        let c = std::ffi::CString::new(local.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(io::Error::last_os_error());
        }
        std::fs::set_permissions(&local, std::fs::Permissions::from_mode(mode))
    });
    agree(&format!("MKNOD fifo {path}"), nfs, l)
}

fn link(p: &mut Pair, from: &str, to: &str) -> bool {
    let (d, name) = split(to);
    let file = resolve(&mut p.c, &p.root, from);
    let dir = p.fh(d);
    p.age(&dir);
    let nfs = match file {
        Err(rnfs_client::Error::Nfs(s)) => Err(s),
        Err(e) => panic!("LOOKUP {from}: {e}"),
        Ok(file) => {
            let before = p.c.getattr(&file).unwrap().nlink;
            let args = LINK3args {
                file,
                link: diropargs3 {
                    dir,
                    name: Opaque(Bytes::copy_from_slice(name.as_bytes())),
                },
            };
            let r: LINK3res = p.c.nfs_call(NFSPROC3_LINK, &args).unwrap();
            match r {
                LINK3res::Ok(ok) => {
                    dir_moved(&format!("LINK {from} {to}"), &ok.linkdir_wcc, true);
                    if let Some(a) = ok.file_attributes {
                        assert_eq!(a.nlink, before + 1, "LINK {from} {to}: file's nlink");
                    }
                    Ok(())
                }
                LINK3res::Fail(s, f) => {
                    dir_moved(&format!("LINK {from} {to} ({s})"), &f.linkdir_wcc, false);
                    Err(s)
                }
            }
        }
    };
    let (a, b) = (p.local(from), p.local(to));
    let l = p.as_user(|| std::fs::hard_link(&a, &b));
    agree(&format!("LINK {from} -> {to}"), nfs, l)
}

fn rename(p: &mut Pair, from: &str, to: &str) -> bool {
    let (fd, fname) = split(from);
    let (td, tname) = split(to);
    let from_dir = p.fh(fd);
    let to_dir = p.fh(td);
    p.age(&from_dir);
    p.age(&to_dir);
    let args = RENAME3args {
        from: diropargs3 {
            dir: from_dir,
            name: Opaque(Bytes::copy_from_slice(fname.as_bytes())),
        },
        to: diropargs3 {
            dir: to_dir,
            name: Opaque(Bytes::copy_from_slice(tname.as_bytes())),
        },
    };
    let r: RENAME3res = p.c.nfs_call(NFSPROC3_RENAME, &args).unwrap();
    let what = format!("RENAME {from} {to}");
    // Renaming a name onto itself, or onto another link of the same file, changes nothing.
    let noop = {
        use std::os::unix::fs::MetadataExt;
        match (
            std::fs::symlink_metadata(p.local(from)),
            std::fs::symlink_metadata(p.local(to)),
        ) {
            (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
            _ => false,
        }
    };
    let nfs = match r {
        RENAME3res::Ok(ok) => {
            if !noop {
                dir_moved(&format!("{what} (from dir)"), &ok.fromdir_wcc, true);
                dir_moved(&format!("{what} (to dir)"), &ok.todir_wcc, true);
            } else {
                check_wcc(&what, &ok.fromdir_wcc, true);
                check_wcc(&what, &ok.todir_wcc, true);
            }
            Ok(())
        }
        RENAME3res::Fail(s, f) => {
            dir_moved(&format!("{what} ({s}, from dir)"), &f.fromdir_wcc, false);
            dir_moved(&format!("{what} ({s}, to dir)"), &f.todir_wcc, false);
            Err(s)
        }
    };
    let (a, b) = (p.local(from), p.local(to));
    let l = p.as_user(|| std::fs::rename(&a, &b));
    agree(&what, nfs, l)
}

fn remove(p: &mut Pair, path: &str) -> bool {
    let (d, name) = split(path);
    let dir = p.fh(d);
    p.age(&dir);
    let args = REMOVE3args {
        object: diropargs3 {
            dir,
            name: Opaque(Bytes::copy_from_slice(name.as_bytes())),
        },
    };
    let r: REMOVE3res = p.c.nfs_call(NFSPROC3_REMOVE, &args).unwrap();
    let nfs = match r {
        REMOVE3res::Ok(ok) => {
            dir_moved(&format!("REMOVE {path}"), &ok.dir_wcc, true);
            Ok(())
        }
        REMOVE3res::Fail(s, f) => {
            dir_moved(&format!("REMOVE {path} ({s})"), &f.dir_wcc, false);
            Err(s)
        }
    };
    let local = p.local(path);
    let l = p.as_user(|| std::fs::remove_file(&local));
    agree(&format!("REMOVE {path}"), nfs, l)
}

fn rmdir(p: &mut Pair, path: &str) -> (bool, Option<nfsstat3>) {
    let (d, name) = split(path);
    let dir = p.fh(d);
    p.age(&dir);
    let args = RMDIR3args {
        object: diropargs3 {
            dir,
            name: Opaque(Bytes::copy_from_slice(name.as_bytes())),
        },
    };
    let r: RMDIR3res = p.c.nfs_call(NFSPROC3_RMDIR, &args).unwrap();
    let nfs = match r {
        RMDIR3res::Ok(ok) => {
            dir_moved(&format!("RMDIR {path}"), &ok.dir_wcc, true);
            Ok(())
        }
        RMDIR3res::Fail(s, f) => {
            dir_moved(&format!("RMDIR {path} ({s})"), &f.dir_wcc, false);
            Err(s)
        }
    };
    let status = nfs.err();
    let local = p.local(path);
    let l = p.as_user(|| std::fs::remove_dir(&local));
    (agree(&format!("RMDIR {path}"), nfs, l), status)
}

fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    XorShift::new(seed).fill(&mut v);
    v
}

#[test]
fn namespace_operations_match_a_local_reference_tree() {
    let mut p = Pair::new();

    // Build.
    assert!(mkdir(&mut p, "a", 0o755));
    assert!(mkdir(&mut p, "a/b", 0o700));
    assert!(mkdir(&mut p, "c", 0o751));
    assert!(mkdir(&mut p, "empty", 0o755));
    assert!(create(&mut p, "a/f1", 0o644, b"hello, world\n", true));
    assert!(create(&mut p, "a/b/f2", 0o600, &content(2, 10_000), true));
    assert!(create(&mut p, "c/f3", 0o640, &content(3, 70_000), true));
    assert!(create(&mut p, "zero", 0o444, b"", true));
    assert!(create(&mut p, "c/odd-mode", 0o4751, &content(4, 5), false));
    assert!(symlink(&mut p, "a/s1", "f1"));
    assert!(symlink(&mut p, "c/dangling", "../no/such/thing"));
    assert!(symlink(&mut p, "long-target", &"x/".repeat(500)));
    assert!(mkfifo(&mut p, "c/fifo", 0o620));
    p.compare("after building");

    // Hard links: nlink 3 on a/f1.
    assert!(link(&mut p, "a/f1", "c/f1-link"));
    assert!(link(&mut p, "a/f1", "a/b/f1-link2"));
    // Renames within a directory, across directories, and over an existing target.
    assert!(rename(&mut p, "a/f1", "a/f1-renamed"));
    assert!(rename(&mut p, "c/f3", "a/b/f3"));
    assert!(rename(&mut p, "a/b/f2", "c/f1-link")); // replaces one link of f1: nlink 2
                                                    // A file over a symlink.
    assert!(rename(&mut p, "zero", "a/s1"));
    // A directory moves (the parents' link counts change).
    assert!(rename(&mut p, "c", "a/b/c"));
    // Onto itself, and onto another link of the same file: both succeed and change nothing.
    assert!(rename(&mut p, "a/b", "a/b"));
    assert!(rename(&mut p, "a/f1-renamed", "a/b/f1-link2"));
    p.compare("after links and renames");

    // Refused changes (each must fail on both sides with the same status, changing nothing).
    let into_self = rename(&mut p, "a", "a/b/c/a-inside");
    assert!(
        !into_self,
        "moving a directory into its own subtree succeeded"
    );
    let (root, ab) = (p.root.clone(), p.fh("a/b"));
    let st = nfs_err(p.c.rename(&root, b"a", &ab, b"x"));
    assert_eq!(
        st,
        nfsstat3::NFS3ERR_INVAL,
        "RENAME of a directory into itself"
    );
    let (ok, st) = rmdir(&mut p, "a/b");
    assert!(!ok);
    assert_eq!(
        st,
        Some(nfsstat3::NFS3ERR_NOTEMPTY),
        "RMDIR of a non-empty directory"
    );
    assert!(!mkdir(&mut p, "a", 0o755), "MKDIR of an existing name");
    assert!(
        !create(&mut p, "a/b/f3", 0o600, b"", true),
        "GUARDED CREATE of an existing name"
    );
    assert!(
        !symlink(&mut p, "a/b/f3", "x"),
        "SYMLINK over an existing name"
    );
    assert!(
        !link(&mut p, "a/b/f3", "a/s1"),
        "LINK over an existing name"
    );
    assert!(!link(&mut p, "a/b", "a/dir-link"), "LINK of a directory");
    assert!(
        !rename(&mut p, "a/b/f3", "empty"),
        "RENAME of a file over a directory"
    );
    assert!(
        !rename(&mut p, "empty", "a/s1"),
        "RENAME of a directory over a file"
    );
    assert!(
        !rename(&mut p, "empty", "a"),
        "RENAME of a directory over a non-empty one"
    );
    assert!(!rename(&mut p, "no-such", "x"), "RENAME of a missing name");
    assert!(!remove(&mut p, "no-such"), "REMOVE of a missing name");
    assert!(!remove(&mut p, "empty"), "REMOVE of a directory");
    assert!(!rmdir(&mut p, "a/s1").0, "RMDIR of a file");
    assert!(!rmdir(&mut p, "no-such").0, "RMDIR of a missing name");
    p.compare("after refused changes");

    // Removals.
    assert!(remove(&mut p, "a/s1"));
    assert!(remove(&mut p, "a/b/f1-link2")); // nlink of f1 drops
    assert!(remove(&mut p, "a/b/c/dangling"));
    assert!(remove(&mut p, "a/b/c/fifo"));
    assert!(rmdir(&mut p, "empty").0);
    assert!(mkdir(&mut p, "empty-again", 0o700));
    assert!(rename(&mut p, "empty-again", "a/b/c/moved-empty"));
    // A directory replaces an empty one.
    assert!(mkdir(&mut p, "d2", 0o755));
    assert!(rename(&mut p, "d2", "a/b/c/moved-empty"));
    p.compare("after removals");
    eprintln!("{} entries compared", local_tree(&p.reference).len());
}

#[test]
fn exclusive_create_is_idempotent_for_its_verifier_only() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let v1: createverf3 = *b"verif-01";
    let v2: createverf3 = *b"verif-02";

    let first = p.c.create_exclusive(&root, b"excl", v1).unwrap();
    let fh = first
        .obj
        .clone()
        .expect("EXCLUSIVE CREATE without a handle");
    let attr = p.c.getattr(&fh).unwrap();
    assert_eq!((attr.r#type, attr.size), (ftype3::NF3REG, 0));
    let fileid = attr.fileid;

    // A retransmission (new XID, same verifier) succeeds with the same file.
    let again = p.c.create_exclusive(&root, b"excl", v1).unwrap();
    assert_eq!(
        again.obj.as_ref(),
        Some(&fh),
        "a retransmitted EXCLUSIVE CREATE must return the same handle"
    );
    // The very same call (same XID) too, whatever the duplicate request cache does.
    let args = rnfs_xdr::to_bytes(&CREATE3args {
        r#where: diropargs3 {
            dir: root.clone(),
            name: Opaque(Bytes::from_static(b"excl")),
        },
        how: createhow3::Exclusive(v1),
    });
    let xid = p.c.next_xid().wrapping_add(1000);
    for _ in 0..2 {
        let r =
            p.c.call_raw(Some(xid), NFS_PROGRAM, NFS_V3, NFSPROC3_CREATE, &args)
                .unwrap();
        let ReplyStatus::Success(res) = r.status else {
            panic!("CREATE: {}", r.status)
        };
        let mut d = Decoder::new(res);
        match CREATE3res::decode(&mut d).unwrap() {
            CREATE3res::Ok(ok) => assert_eq!(ok.obj.as_ref(), Some(&fh)),
            CREATE3res::Fail(s, _) => panic!("same-XID EXCLUSIVE CREATE retransmission: {s}"),
        }
    }

    // Another verifier: EXIST, and the file is untouched.
    assert_eq!(
        nfs_err(p.c.create_exclusive(&root, b"excl", v2)),
        nfsstat3::NFS3ERR_EXIST
    );
    // Data written after the create survives a late retransmission.
    write_all(&mut p.c, &fh, 0, b"written after create").unwrap();
    let _ = p.c.create_exclusive(&root, b"excl", v1);
    assert_eq!(read_all(&mut p.c, &fh).unwrap(), b"written after create");
    assert_eq!(p.c.getattr(&fh).unwrap().fileid, fileid);

    // The client's usual follow-up SETATTR works and sets what it asks.
    p.c.setattr(&fh, mode_attr(0o640), None).unwrap();
    let a = p.c.getattr(&fh).unwrap();
    assert_eq!(a.mode & 0o7777, 0o640);
    assert_eq!((a.uid, a.gid), (UID, GID));

    // EXCLUSIVE on a name made by a GUARDED create (no verifier stored): EXIST.
    p.c.create(&root, b"plain", createhow3::Guarded(mode_attr(0o644)))
        .unwrap();
    assert_eq!(
        nfs_err(p.c.create_exclusive(&root, b"plain", v1)),
        nfsstat3::NFS3ERR_EXIST
    );
    // ... and on a directory.
    p.c.mkdir(&root, b"dir", mode_attr(0o755)).unwrap();
    assert_eq!(
        nfs_err(p.c.create_exclusive(&root, b"dir", v1)),
        nfsstat3::NFS3ERR_EXIST
    );
    // Two different names with the same verifier are two files.
    let other = p.c.create_exclusive(&root, b"excl-2", v1).unwrap();
    assert_ne!(other.obj.as_ref(), Some(&fh));
    assert_eq!(
        p.srv.export().join("excl").metadata().unwrap().len(),
        b"written after create".len() as u64
    );
}

#[test]
fn guarded_and_unchecked_create_of_an_existing_name() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let made =
        p.c.create(&root, b"f", createhow3::Guarded(mode_attr(0o600)))
            .unwrap();
    let fh = made.obj.unwrap();
    write_all(&mut p.c, &fh, 0, b"precious data").unwrap();

    // GUARDED: EXIST, nothing changes.
    let args = CREATE3args {
        r#where: diropargs3 {
            dir: root.clone(),
            name: Opaque(Bytes::from_static(b"f")),
        },
        how: createhow3::Guarded(mode_attr(0o666)),
    };
    let r: CREATE3res = p.c.nfs_call(NFSPROC3_CREATE, &args).unwrap();
    match r {
        CREATE3res::Fail(s, f) => {
            assert_eq!(s, nfsstat3::NFS3ERR_EXIST);
            check_wcc("GUARDED CREATE of an existing name", &f.dir_wcc, true);
        }
        CREATE3res::Ok(_) => panic!("GUARDED CREATE of an existing name succeeded"),
    }
    let a = p.c.getattr(&fh).unwrap();
    assert_eq!((a.mode & 0o7777, a.size), (0o600, 13));

    // UNCHECKED without a size: the same file, its data kept (RFC 1813 §3.3.8: only the given
    // attributes are applied).
    let r =
        p.c.create(&root, b"f", createhow3::Unchecked(sattr3::default()))
            .unwrap();
    if let Some(h) = &r.obj {
        assert_eq!(
            h, &fh,
            "UNCHECKED CREATE of an existing file: another handle"
        );
    }
    assert_eq!(
        read_all(&mut p.c, &fh).unwrap(),
        b"precious data",
        "UNCHECKED CREATE without a size attribute must not truncate an existing file"
    );
    // UNCHECKED with size 0: truncated.
    p.c.create(&root, b"f", createhow3::Unchecked(size_attr(0)))
        .unwrap();
    assert_eq!(p.c.getattr(&fh).unwrap().size, 0);
    // UNCHECKED on a directory's name fails (never replaces or opens the directory).
    p.c.mkdir(&root, b"d", mode_attr(0o755)).unwrap();
    let s = nfs_err(p.c.create(&root, b"d", createhow3::Unchecked(sattr3::default())));
    assert!(
        matches!(s, nfsstat3::NFS3ERR_EXIST | nfsstat3::NFS3ERR_ISDIR),
        "UNCHECKED CREATE of a directory's name: {s}"
    );
}

#[test]
fn setattr_guard_must_match_the_ctime() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let fh =
        p.c.create(&root, b"g", createhow3::Guarded(mode_attr(0o644)))
            .unwrap()
            .obj
            .unwrap();
    let ctime = p.c.getattr(&fh).unwrap().ctime;
    let wrong = [
        nfstime3 {
            seconds: ctime.seconds - 1,
            nseconds: ctime.nseconds,
        },
        // Only the nanoseconds differ: a guard compared to the second is wrong too.
        nfstime3 {
            seconds: ctime.seconds,
            nseconds: ctime.nseconds ^ 1,
        },
    ];
    for guard in wrong {
        let args = SETATTR3args {
            object: fh.clone(),
            new_attributes: mode_attr(0o600),
            guard: Some(guard),
        };
        let r: SETATTR3res = p.c.nfs_call(NFSPROC3_SETATTR, &args).unwrap();
        match r {
            SETATTR3res::Fail(s, f) => {
                assert_eq!(
                    s,
                    nfsstat3::NFS3ERR_NOT_SYNC,
                    "SETATTR with guard {guard:?} (ctime {ctime:?})"
                );
                let after = check_wcc("SETATTR NOT_SYNC", &f.obj_wcc, false);
                assert_eq!(after.mode & 0o7777, 0o644);
            }
            SETATTR3res::Ok(_) => panic!("SETATTR with a wrong guard {guard:?} succeeded"),
        }
        assert_eq!(
            p.c.getattr(&fh).unwrap().mode & 0o7777,
            0o644,
            "a refused SETATTR changed the mode"
        );
    }
    // The right guard: applied.
    let r = p.c.setattr(&fh, mode_attr(0o600), Some(ctime)).unwrap();
    let after = check_wcc("SETATTR with the right guard", &r.obj_wcc, false);
    assert_eq!(after.mode & 0o7777, 0o600);
    assert_eq!(p.c.getattr(&fh).unwrap().mode & 0o7777, 0o600);
}

#[test]
fn write_and_setattr_size_details() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let fh =
        p.c.create(&root, b"w", createhow3::Guarded(mode_attr(0o644)))
            .unwrap()
            .obj
            .unwrap();
    let local = p.srv.export().join("w");

    // Each stability level: at least as durable as asked, and one verifier for the whole run.
    let mut verf = None;
    for (i, how) in [
        stable_how::UNSTABLE,
        stable_how::DATA_SYNC,
        stable_how::FILE_SYNC,
    ]
    .into_iter()
    .enumerate()
    {
        let off = (i as u64) * 10;
        let r =
            p.c.write(&fh, off, Bytes::from_static(b"0123456789"), how)
                .unwrap();
        assert_eq!(r.count, 10);
        assert!(
            r.committed as u32 >= how as u32,
            "asked {how:?}, got {:?}",
            r.committed
        );
        let after = check_wcc("WRITE", &r.file_wcc, false);
        assert_eq!(after.size, off + 10, "WRITE's post-op size");
        if let Some(b) = r.file_wcc.before {
            assert_eq!(b.size, off, "WRITE's pre-op size");
        }
        assert_eq!(
            *verf.get_or_insert(r.verf),
            r.verf,
            "write verifier changed within a run"
        );
    }
    let c = p.c.commit(&fh, 0, 0).unwrap();
    assert_eq!(Some(c.verf), verf, "COMMIT's verifier differs from WRITE's");
    check_wcc("COMMIT", &c.file_wcc, false);

    // Beyond EOF: a hole of zeros.
    p.c.write(
        &fh,
        1 << 20,
        Bytes::from_static(b"tail"),
        stable_how::FILE_SYNC,
    )
    .unwrap();
    let data = std::fs::read(&local).unwrap();
    assert_eq!(data.len(), (1 << 20) + 4);
    assert_eq!(&data[..30], b"012345678901234567890123456789");
    assert!(
        data[30..1 << 20].iter().all(|&b| b == 0),
        "the hole is not zeros"
    );
    assert_eq!(&data[1 << 20..], b"tail");
    assert_eq!(read_all(&mut p.c, &fh).unwrap(), data);

    // SETATTR size: shrink, then grow with zeros.
    let r = p.c.setattr(&fh, size_attr(5), None).unwrap();
    assert_eq!(check_wcc("SETATTR size", &r.obj_wcc, false).size, 5);
    p.c.setattr(&fh, size_attr(100), None).unwrap();
    let mut want = b"01234".to_vec();
    want.resize(100, 0);
    assert_eq!(std::fs::read(&local).unwrap(), want);
    assert_eq!(read_all(&mut p.c, &fh).unwrap(), want);

    // One maximal WRITE (1 MiB) lands whole.
    let big = content(77, 1 << 20);
    let r =
        p.c.write(&fh, 0, Bytes::from(big.clone()), stable_how::UNSTABLE)
            .unwrap();
    assert_eq!(r.count, 1 << 20);
    p.c.commit(&fh, 0, 0).unwrap();
    assert_eq!(std::fs::read(&local).unwrap(), big);

    // `count` disagreeing with the data is refused and writes nothing.
    let args = WRITE3args {
        file: fh.clone(),
        offset: 0,
        count: 3,
        stable: stable_how::FILE_SYNC,
        data: Opaque(Bytes::from_static(b"XYZW")),
    };
    let r: WRITE3res = p.c.nfs_call(NFSPROC3_WRITE, &args).unwrap();
    assert_eq!(
        r.status(),
        nfsstat3::NFS3ERR_INVAL,
        "WRITE with count != data length"
    );
    assert_eq!(&std::fs::read(&local).unwrap()[..4], &big[..4]);

    // Offsets and sizes past what a file can hold are errors, not wraps or crashes.
    let len_before = std::fs::metadata(&local).unwrap().len();
    for off in [u64::MAX - 1, 1 << 63, 1 << 62] {
        let s = nfs_err(p.c.write(&fh, off, Bytes::from_static(b"EDGE"), stable_how::FILE_SYNC));
        assert!(
            matches!(s, nfsstat3::NFS3ERR_FBIG | nfsstat3::NFS3ERR_INVAL),
            "WRITE at offset {off}: {s}"
        );
    }
    for size in [u64::MAX, 1 << 63, 1 << 62] {
        let s = nfs_err(p.c.setattr(&fh, size_attr(size), None));
        assert!(
            matches!(s, nfsstat3::NFS3ERR_FBIG | nfsstat3::NFS3ERR_INVAL),
            "SETATTR size {size}: {s}"
        );
    }
    assert_eq!(std::fs::metadata(&local).unwrap().len(), len_before);

    // Times: client time and server time.
    let t = nfstime3 {
        seconds: 1_234_567_890,
        nseconds: 123_456_789,
    };
    p.c.setattr(&fh, times_attr(t), None).unwrap();
    let a = p.c.getattr(&fh).unwrap();
    assert_eq!((a.atime, a.mtime), (t, t));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    p.c.setattr(
        &fh,
        sattr3 {
            mtime: set_mtime::SetToServerTime,
            ..Default::default()
        },
        None,
    )
    .unwrap();
    let m = u64::from(p.c.getattr(&fh).unwrap().mtime.seconds);
    assert!(m + 5 >= now && m <= now + 5, "server time {m}, now {now}");

    // A directory cannot be written or truncated.
    let dir =
        p.c.mkdir(&root, b"dir", mode_attr(0o755))
            .unwrap()
            .obj
            .unwrap();
    let s = nfs_err(p.c.write(&dir, 0, Bytes::from_static(b"x"), stable_how::FILE_SYNC));
    assert!(
        matches!(s, nfsstat3::NFS3ERR_ISDIR | nfsstat3::NFS3ERR_INVAL),
        "WRITE to a directory: {s}"
    );
    let s = nfs_err(p.c.setattr(&dir, size_attr(0), None));
    assert!(
        matches!(s, nfsstat3::NFS3ERR_ISDIR | nfsstat3::NFS3ERR_INVAL),
        "SETATTR size of a directory: {s}"
    );
}

#[test]
fn bad_names_are_refused_and_create_nothing() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let before = local_tree(p.srv.export());
    let parent = p.srv.export().parent().unwrap().to_owned();
    let parent_before: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let long = "n".repeat(256);
    for (name, want) in [
        (long.as_bytes(), Some(nfsstat3::NFS3ERR_NAMETOOLONG)),
        (&b""[..], None),
        (b".", None),
        (b"..", None),
        (b"a/b", None),
        (b"../escaped", None),
        (b"nul\0byte", None),
    ] {
        let shown = String::from_utf8_lossy(name).into_owned();
        for (proc_name, r) in [
            (
                "CREATE",
                p.c.create(&root, name, createhow3::Guarded(mode_attr(0o644)))
                    .map(|_| ()),
            ),
            (
                "MKDIR",
                p.c.mkdir(&root, name, mode_attr(0o755)).map(|_| ()),
            ),
            (
                "SYMLINK",
                p.c.symlink(&root, name, b"t", sattr3::default())
                    .map(|_| ()),
            ),
        ] {
            let s = nfs_err(r);
            if let Some(w) = want {
                assert_eq!(s, w, "{proc_name} {shown:?}");
            }
        }
        let _ = p.c.rename(&root, b"nothing", &root, name);
    }
    // A name of exactly 255 bytes is fine.
    let ok = "m".repeat(255);
    p.c.create(&root, ok.as_bytes(), createhow3::Guarded(mode_attr(0o644)))
        .unwrap();
    std::fs::remove_file(p.srv.export().join(&ok)).unwrap();
    assert_same_tree("after bad names", &before, &local_tree(p.srv.export()));
    let parent_after: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        parent_before, parent_after,
        "something appeared beside the export"
    );
}

/// The reference directory is not a mount point and shares the export's file system, so link
/// counts and sizes are comparable; make sure, so a failure means the server, not the setup.
#[test]
fn reference_and_export_share_a_file_system() {
    use std::os::unix::fs::MetadataExt;
    let p = Pair::new();
    let a = std::fs::metadata(p.srv.export()).unwrap().dev();
    let b = std::fs::metadata(Path::new(&p.reference)).unwrap().dev();
    assert_eq!(a, b);
}

/// RFC 1813 §4.4: a stateless server cannot know a file is open, so "the server's permission
/// checking algorithm should allow the owner of a file to access it regardless of the permission
/// setting". This is what makes `open(path, O_CREAT | O_WRONLY, 0444)` followed by `write` work
/// over NFS (tar extracting read-only files, git writing its 0444 objects, `cp` of a read-only
/// file): the client sends CREATE with mode 0444, then WRITEs as the owner.
#[test]
fn owner_may_write_a_file_it_just_created_read_only() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let fh =
        p.c.create(&root, b"ro-file", createhow3::Guarded(mode_attr(0o444)))
            .unwrap()
            .obj
            .unwrap();
    assert_eq!(p.c.getattr(&fh).unwrap().mode & 0o7777, 0o444);
    // Anybody else is still refused.
    let mut other = tcp_as(&p.srv, UID + 1, GID + 1);
    assert_eq!(
        nfs_err(other.write(&fh, 0, Bytes::from_static(b"x"), stable_how::FILE_SYNC)),
        nfsstat3::NFS3ERR_ACCES
    );
    let r = p.c.write(
        &fh,
        0,
        Bytes::from_static(b"owner's data"),
        stable_how::FILE_SYNC,
    );
    assert!(
        r.is_ok(),
        "the owner's WRITE to the 0444 file it just created was refused: {:?}",
        r.err()
    );
    assert_eq!(
        std::fs::read(p.srv.export().join("ro-file")).unwrap(),
        b"owner's data"
    );
}

/// Several connections (TCP and UDP) writing interleaved blocks of one file at once, UNSTABLE,
/// while others create and remove files in the same directory: every byte lands where it was
/// sent, and the directory ends with exactly the surviving names.
#[test]
fn concurrent_writers_and_creators() {
    const WRITERS: usize = 4;
    const BLOCK: usize = 24 << 10; // fits a UDP datagram
    const BLOCKS: usize = 96;
    let mut p = Pair::new();
    let root = p.root.clone();
    let fh =
        p.c.create(&root, b"shared", createhow3::Guarded(mode_attr(0o644)))
            .unwrap()
            .obj
            .unwrap();
    let addr = p.srv.tcp_addr();
    let udp_addr = p.srv.udp_addr();
    let expected: Vec<u8> = content(99, BLOCK * BLOCKS);
    let verifiers = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..WRITERS {
            let (fh, expected, verifiers) = (&fh, &expected, &verifiers);
            s.spawn(move || {
                let mut c = if w % 2 == 0 {
                    Client::connect_tcp(addr).unwrap()
                } else {
                    Client::connect_udp(udp_addr).unwrap()
                }
                .with_auth_sys(UID, GID, &[GID]);
                for b in (w..BLOCKS).step_by(WRITERS) {
                    let chunk = &expected[b * BLOCK..(b + 1) * BLOCK];
                    let r = c
                        .write(
                            fh,
                            (b * BLOCK) as u64,
                            Bytes::copy_from_slice(chunk),
                            stable_how::UNSTABLE,
                        )
                        .unwrap();
                    assert_eq!(r.count as usize, BLOCK);
                    verifiers.lock().unwrap().push(r.verf);
                }
            });
        }
        for k in 0..2 {
            let root = &root;
            s.spawn(move || {
                let mut c = Client::connect_tcp(addr)
                    .unwrap()
                    .with_auth_sys(UID, GID, &[GID]);
                for i in 0..100 {
                    let name = format!("t{k}-{i}");
                    c.create(root, name.as_bytes(), createhow3::Guarded(mode_attr(0o600)))
                        .unwrap();
                    if i % 2 == 1 {
                        c.remove(root, name.as_bytes()).unwrap();
                    }
                }
            });
        }
    });
    let v = p.c.commit(&fh, 0, 0).unwrap().verf;
    let verifiers = verifiers.into_inner().unwrap();
    assert!(verifiers.iter().all(|x| *x == v), "verifiers differ");
    assert!(
        std::fs::read(p.srv.export().join("shared")).unwrap() == expected,
        "concurrently written file differs"
    );
    let mut names: Vec<String> = std::fs::read_dir(p.srv.export())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = (0..2)
        .flat_map(|k| (0..100).step_by(2).map(move |i| format!("t{k}-{i}")))
        .collect();
    want.push("shared".into());
    want.sort();
    assert_eq!(names, want);
    let mut listed: Vec<String> =
        p.c.readdirplus(&root)
            .unwrap()
            .into_iter()
            .map(|e| String::from_utf8(e.name.as_bytes().to_vec()).unwrap())
            .filter(|n| n != "." && n != "..")
            .collect();
    listed.sort();
    assert_eq!(listed, want, "READDIRPLUS after concurrent changes");
}

/// Data procedures on objects that are not regular files: a symlink's handle never reaches its
/// target (no write, truncate or chmod through it), and a FIFO's handle never blocks the server
/// (opening a FIFO waits for the other end): every call answers within a few seconds.
#[test]
fn data_procedures_on_symlinks_and_fifos_neither_follow_nor_block() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let target =
        p.c.create(&root, b"target", createhow3::Guarded(mode_attr(0o644)))
            .unwrap()
            .obj
            .unwrap();
    write_all(&mut p.c, &target, 0, b"target data").unwrap();
    let link =
        p.c.symlink(&root, b"link", b"target", sattr3::default())
            .unwrap()
            .obj
            .unwrap();
    let fifo =
        p.c.mknod(&root, b"fifo", mknoddata3::Fifo(mode_attr(0o666)))
            .unwrap()
            .obj
            .unwrap();
    p.c.set_timeout(std::time::Duration::from_secs(5)).unwrap();
    let target_path = p.srv.export().join("target");

    let s = nfs_err(p.c.write(&link, 0, Bytes::from_static(b"XX"), stable_how::FILE_SYNC));
    assert_ne!(s, nfsstat3::NFS3_OK);
    let _ = p.c.setattr(&link, size_attr(0), None);
    let _ = p.c.setattr(&link, mode_attr(0o600), None);
    let _ = p.c.commit(&link, 0, 0);
    let m = std::fs::metadata(&target_path).unwrap();
    assert_eq!(
        std::fs::read(&target_path).unwrap(),
        b"target data",
        "a data procedure on a symlink's handle changed its target"
    );
    assert_eq!(
        m.permissions().mode() & 0o7777,
        0o644,
        "SETATTR mode on a symlink's handle changed its target's mode"
    );

    for (what, r) in [
        (
            "WRITE",
            p.c.write(&fifo, 0, Bytes::from_static(b"x"), stable_how::FILE_SYNC)
                .map(|_| ()),
        ),
        ("READ", p.c.read(&fifo, 0, 10).map(|_| ())),
        (
            "SETATTR size",
            p.c.setattr(&fifo, size_attr(0), None).map(|_| ()),
        ),
        ("COMMIT", p.c.commit(&fifo, 0, 0).map(|_| ())),
    ] {
        match r {
            Ok(()) | Err(rnfs_client::Error::Nfs(_)) => {}
            Err(e) => panic!("{what} on a FIFO's handle: {e} (did the server block?)"),
        }
    }
    // Still serving.
    assert_eq!(read_all(&mut p.c, &target).unwrap(), b"target data");
}

/// The open-file cache keeps descriptors between calls; a file removed (through NFS or behind the
/// server's back) must still be STALE for its old handle, whatever was cached, while a file that
/// only lost one of its names stays valid.
#[test]
fn removed_files_are_stale_even_after_reads_and_writes() {
    let mut p = Pair::new();
    let root = p.root.clone();
    let make = |p: &mut Pair, name: &str| {
        let fh =
            p.c.create(
                &root,
                name.as_bytes(),
                createhow3::Guarded(mode_attr(0o644)),
            )
            .unwrap()
            .obj
            .unwrap();
        // UNSTABLE, then a READ: the server now holds this file open, maybe with dirty pages.
        p.c.write(
            &fh,
            0,
            Bytes::from_static(b"cached data"),
            stable_how::UNSTABLE,
        )
        .unwrap();
        assert_eq!(read_all(&mut p.c, &fh).unwrap(), b"cached data");
        fh
    };
    let via_nfs = make(&mut p, "removed-via-nfs");
    let behind = make(&mut p, "removed-behind");
    let replaced = make(&mut p, "replaced-by-rename");
    let two_names = make(&mut p, "two-names");
    make(&mut p, "newcomer");
    p.c.link(&two_names, &root, b"second-name").unwrap();

    p.c.remove(&root, b"removed-via-nfs").unwrap();
    std::fs::remove_file(p.srv.export().join("removed-behind")).unwrap();
    p.c.rename(&root, b"newcomer", &root, b"replaced-by-rename")
        .unwrap();
    p.c.remove(&root, b"two-names").unwrap();

    for (what, fh) in [
        ("removed through NFS", &via_nfs),
        ("removed behind the server's back", &behind),
        ("replaced by RENAME", &replaced),
    ] {
        assert_eq!(
            nfs_err(p.c.getattr(fh)),
            nfsstat3::NFS3ERR_STALE,
            "GETATTR, {what}"
        );
        assert_eq!(
            nfs_err(p.c.read(fh, 0, 100)),
            nfsstat3::NFS3ERR_STALE,
            "READ, {what}"
        );
        assert_eq!(
            nfs_err(p.c.write(fh, 0, Bytes::from_static(b"x"), stable_how::FILE_SYNC)),
            nfsstat3::NFS3ERR_STALE,
            "WRITE, {what}"
        );
        assert_eq!(
            nfs_err(p.c.setattr(fh, size_attr(0), None)),
            nfsstat3::NFS3ERR_STALE,
            "SETATTR, {what}"
        );
        assert_eq!(
            nfs_err(p.c.commit(fh, 0, 0)),
            nfsstat3::NFS3ERR_STALE,
            "COMMIT, {what}"
        );
    }
    // One name left: the same file, its data intact, still writable.
    assert_eq!(read_all(&mut p.c, &two_names).unwrap(), b"cached data");
    write_all(&mut p.c, &two_names, 0, b"CACHED").unwrap();
    assert_eq!(
        std::fs::read(p.srv.export().join("second-name")).unwrap(),
        b"CACHED data"
    );
    // The renamed-over name now holds the newcomer, with its own data.
    let now = fh_of(&mut p.c, &root, "replaced-by-rename");
    assert_ne!(now, replaced);
    assert_eq!(read_all(&mut p.c, &now).unwrap(), b"cached data");
}

/// Encodes REMOVE of `name` in `dir`.
fn remove_args(dir: &nfs_fh3, name: &str) -> Bytes {
    rnfs_xdr::to_bytes(&REMOVE3args {
        object: diropargs3 {
            dir: dir.clone(),
            name: Opaque(Bytes::copy_from_slice(name.as_bytes())),
        },
    })
}

/// The NFS status of a raw reply (all NFSv3 results start with it).
fn raw_nfs_status(r: rnfs_client::RpcReply) -> nfsstat3 {
    match r.status {
        ReplyStatus::Success(res) => {
            let mut d = Decoder::new(res.slice(..4));
            nfsstat3::decode(&mut d).unwrap()
        }
        other => panic!("RPC refused: {other}"),
    }
}

/// RFC 1813 §3.3.12 and the duplicate request cache: a retransmitted REMOVE (same XID, same
/// caller, same arguments, same client address) gets the first reply, on the same connection, on
/// a new connection, and over UDP; a call that only shares the XID (another address, another
/// credential, other arguments) is executed on its own.
#[test]
fn retransmitted_non_idempotent_calls_get_the_first_reply() {
    let mut p = Pair::new();
    let root = p.root.clone();
    for n in ["r1", "r2", "r3"] {
        p.c.create(&root, n.as_bytes(), createhow3::Guarded(mode_attr(0o644)))
            .unwrap();
    }
    let xid = 0x5eed_0000 ^ std::process::id();
    let args = remove_args(&root, "r1");
    let first =
        p.c.call_raw(Some(xid), NFS_PROGRAM, NFS_V3, NFSPROC3_REMOVE, &args)
            .unwrap();
    assert_eq!(raw_nfs_status(first.clone()), nfsstat3::NFS3_OK);
    assert!(!p.srv.export().join("r1").exists());

    // Retransmissions: same connection, a new connection (new port), UDP.
    let again =
        p.c.call_raw(Some(xid), NFS_PROGRAM, NFS_V3, NFSPROC3_REMOVE, &args)
            .unwrap();
    assert_eq!(
        raw_nfs_status(again),
        nfsstat3::NFS3_OK,
        "a retransmitted REMOVE on the same connection was executed again"
    );
    let mut reconnected = tcp_as(&p.srv, UID, GID);
    let r = reconnected
        .call_raw(Some(xid), NFS_PROGRAM, NFS_V3, NFSPROC3_REMOVE, &args)
        .unwrap();
    assert_eq!(
        raw_nfs_status(r),
        nfsstat3::NFS3_OK,
        "a REMOVE retransmitted after a reconnect was executed again"
    );
    let mut udp = Client::connect_udp(p.srv.udp_addr())
        .unwrap()
        .with_auth_sys(UID, GID, &[GID]);
    let r = udp
        .call_raw(Some(xid), NFS_PROGRAM, NFS_V3, NFSPROC3_REMOVE, &args)
        .unwrap();
    assert_eq!(
        raw_nfs_status(r),
        nfsstat3::NFS3_OK,
        "a REMOVE retransmitted over UDP was executed again"
    );

    // Same XID and arguments from another address: another client's call, executed.
    let mut other_host = Client::connect_tcp_from("127.0.0.2:0".parse().unwrap(), p.srv.tcp_addr())
        .unwrap()
        .with_auth_sys(UID, GID, &[GID]);
    let r = other_host
        .call_raw(Some(xid), NFS_PROGRAM, NFS_V3, NFSPROC3_REMOVE, &args)
        .unwrap();
    assert_eq!(
        raw_nfs_status(r),
        nfsstat3::NFS3ERR_NOENT,
        "another host's call with a reused XID got the first host's reply"
    );
    // Same XID and arguments, another credential: executed (and checked) as that user.
    let mut other_user = tcp_as(&p.srv, UID + 1, GID + 1);
    let r = other_user
        .call_raw(Some(xid), NFS_PROGRAM, NFS_V3, NFSPROC3_REMOVE, &args)
        .unwrap();
    assert_eq!(
        raw_nfs_status(r),
        nfsstat3::NFS3ERR_NOENT,
        "another user's call with a reused XID got the first user's reply"
    );
    // Same XID and caller, other arguments: a new call, executed.
    let r =
        p.c.call_raw(
            Some(xid),
            NFS_PROGRAM,
            NFS_V3,
            NFSPROC3_REMOVE,
            &remove_args(&root, "r2"),
        )
        .unwrap();
    assert_eq!(raw_nfs_status(r), nfsstat3::NFS3_OK);
    assert!(
        !p.srv.export().join("r2").exists(),
        "a call reusing an XID with other arguments was not executed"
    );
    assert!(p.srv.export().join("r3").exists());
}
