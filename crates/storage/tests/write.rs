//! The local backend's modifying procedures against a real ext4 directory. Runs as root (handles
//! need CAP_DAC_READ_SEARCH); every test works in its own tempdir and switches identity on its own
//! thread only.

// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use common::Checked;
use rnfs_storage::handle::HandleKey;
use rnfs_storage::local::LocalFs;
use rnfs_storage::{
    CreateMode, Error, FileHandle, FileType, Identity, NodeKind, SetAttrs, SetTime, Stability,
    Timestamp,
};

const USER: u32 = 1000;
const OTHER: u32 = 2000;
/// What root squashing maps root to.
const SQUASHED: u32 = 65534;

fn root() -> Identity {
    Identity::root()
}

fn user(uid: u32) -> Identity {
    Identity {
        uid,
        gid: uid,
        groups: vec![],
    }
}

/// A tempdir export (0755, root's) with a world-writable `open` directory (0777).
fn setup() -> (tempfile::TempDir, LocalFs) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::create_dir(dir.path().join("open")).unwrap();
    fs::set_permissions(dir.path().join("open"), fs::Permissions::from_mode(0o777)).unwrap();
    let fs = LocalFs::new(1, dir.path(), HandleKey::random().unwrap()).unwrap();
    (dir, fs)
}

/// USER with supplementary group `gid`.
fn member_of(gid: u32) -> Identity {
    Identity {
        uid: USER,
        gid: USER,
        groups: vec![gid],
    }
}

/// A root-owned executable in `dir` (a copy of /bin/true, mode 0755) and its bytes.
fn copy_of_true(dir: &Path) -> Option<(std::path::PathBuf, Vec<u8>)> {
    let bin = fs::read("/bin/true").ok()?;
    let prog = dir.join("true");
    put(&prog, &bin, 0o755);
    Some((prog, bin))
}

fn put(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn lookup(fs: &LocalFs, dir: &FileHandle, name: &str) -> FileHandle {
    fs.lookup(&root(), dir, name.as_bytes()).unwrap().0
}

fn mode(m: u32) -> SetAttrs {
    SetAttrs {
        mode: Some(m),
        ..SetAttrs::default()
    }
}

fn guarded(fs: &LocalFs, who: &Identity, dir: &FileHandle, name: &str, m: u32) -> FileHandle {
    fs.create(who, dir, name.as_bytes(), &CreateMode::Guarded(mode(m)))
        .unwrap()
        .handle
}

fn read_all(fs: &LocalFs, who: &Identity, fh: &FileHandle) -> Vec<u8> {
    fs.read(who, fh, 0, 1 << 20).unwrap().data.to_vec()
}

fn ts(seconds: u32) -> Timestamp {
    Timestamp {
        seconds,
        nanoseconds: 0,
    }
}

fn now_secs() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

// ---- CREATE ----

#[test]
fn create_guarded_and_unchecked() {
    let (dir, fs) = setup();
    let r = fs.root();
    // The client's mode exactly: no server umask (the test process's is usually 022).
    let c = fs
        .create(&root(), &r, b"f", &CreateMode::Guarded(mode(0o666)))
        .unwrap();
    assert_eq!(
        (c.attr.file_type, c.attr.mode, c.attr.size_bytes),
        (FileType::Regular, 0o666, 0)
    );
    assert_eq!(
        fs::metadata(dir.path().join("f")).unwrap().mode() & 0o7777,
        0o666
    );
    assert_eq!(lookup(&fs, &r, "f"), c.handle);
    assert_eq!(
        fs.create(&root(), &r, b"f", &CreateMode::Guarded(mode(0o600)))
            .unwrap_err(),
        Error::Exist
    );
    // UNCHECKED over an existing file: same file, only the size applied (O_TRUNC).
    fs::write(dir.path().join("f"), b"old contents").unwrap();
    let again = fs
        .create(
            &root(),
            &r,
            b"f",
            &CreateMode::Unchecked(SetAttrs {
                mode: Some(0o600),
                size_bytes: Some(0),
                ..SetAttrs::default()
            }),
        )
        .unwrap();
    assert_eq!(again.handle, c.handle);
    assert_eq!((again.attr.size_bytes, again.attr.mode), (0, 0o666));
    // UNCHECKED without a size leaves the contents.
    fs::write(dir.path().join("f"), b"kept").unwrap();
    let again = fs
        .create(&root(), &r, b"f", &CreateMode::Unchecked(mode(0o600)))
        .unwrap();
    assert_eq!(again.attr.size_bytes, 4);
    // UNCHECKED of a new name creates, with size and times.
    let n = fs
        .create(
            &root(),
            &r,
            b"new",
            &CreateMode::Unchecked(SetAttrs {
                mode: Some(0o640),
                size_bytes: Some(10),
                mtime: SetTime::ClientTime(ts(12345)),
                ..SetAttrs::default()
            }),
        )
        .unwrap();
    assert_eq!(
        (n.attr.mode, n.attr.size_bytes, n.attr.mtime),
        (0o640, 10, ts(12345))
    );
    // No mode given: owner only.
    let d = fs
        .create(
            &root(),
            &r,
            b"default",
            &CreateMode::Guarded(SetAttrs::default()),
        )
        .unwrap();
    assert_eq!(d.attr.mode, 0o600);
    // Existing non-files.
    fs::create_dir(dir.path().join("d")).unwrap();
    std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
    let unchecked = CreateMode::Unchecked(mode(0o644));
    assert_eq!(
        fs.create(&root(), &r, b"d", &unchecked).unwrap_err(),
        Error::IsDir
    );
    assert_eq!(
        fs.create(&root(), &r, b"l", &unchecked).unwrap_err(),
        Error::Exist
    );
    assert_eq!(fs::read_link(dir.path().join("l")).unwrap(), Path::new("f"));
    // Names.
    for name in [&b"."[..], b".."] {
        assert_eq!(
            fs.create(&root(), &r, name, &unchecked).unwrap_err(),
            Error::Exist
        );
    }
    for name in [&b""[..], b"a/b", b"a\0b"] {
        assert_eq!(
            fs.create(&root(), &r, name, &unchecked).unwrap_err(),
            Error::Access
        );
    }
    assert_eq!(
        fs.create(&root(), &r, &[b'x'; 256], &unchecked)
            .unwrap_err(),
        Error::NameTooLong
    );
    assert!(fs.create(&root(), &r, &[b'x'; 255], &unchecked).is_ok());
    assert_eq!(
        fs.create(&root(), &c.handle, b"x", &unchecked).unwrap_err(),
        Error::NotDir
    );
}

#[test]
fn exclusive_create_retransmission() {
    let (dir, fs) = setup();
    let r = fs.root();
    let verf = [0x81, 2, 3, 4, 0xf5, 6, 7, 8];
    let c = fs
        .create(&root(), &r, b"x", &CreateMode::Exclusive(verf))
        .unwrap();
    // Stored in mtime/atime seconds, 31 bits each.
    assert_eq!(c.attr.mtime.seconds, 0x0102_0304);
    assert_eq!(c.attr.atime.seconds, 0x7506_0708);
    assert_eq!((c.attr.mode, c.attr.size_bytes), (0o600, 0));
    // A retransmission gets the same answer; another verifier does not.
    let again = fs
        .create(&root(), &r, b"x", &CreateMode::Exclusive(verf))
        .unwrap();
    assert_eq!(again.handle, c.handle);
    let mut other = verf;
    other[7] ^= 1;
    assert_eq!(
        fs.create(&root(), &r, b"x", &CreateMode::Exclusive(other))
            .unwrap_err(),
        Error::Exist
    );
    // Once the client set the real attributes, the verifier is gone.
    fs.setattr(
        &root(),
        &c.handle,
        &SetAttrs {
            mode: Some(0o644),
            atime: SetTime::ServerTime,
            mtime: SetTime::ServerTime,
            ..SetAttrs::default()
        },
        None,
    )
    .unwrap();
    assert_eq!(
        fs.create(&root(), &r, b"x", &CreateMode::Exclusive(verf))
            .unwrap_err(),
        Error::Exist
    );
    // Neither GUARDED nor other objects are taken for retransmissions.
    fs::create_dir(dir.path().join("d")).unwrap();
    assert_eq!(
        fs.create(&root(), &r, b"d", &CreateMode::Exclusive(verf))
            .unwrap_err(),
        Error::Exist
    );
    // A non-root caller, all bits set.
    let open = lookup(&fs, &r, "open");
    let c = fs
        .create(&user(USER), &open, b"u", &CreateMode::Exclusive([0xff; 8]))
        .unwrap();
    let again = fs
        .create(&user(USER), &open, b"u", &CreateMode::Exclusive([0xff; 8]))
        .unwrap();
    assert_eq!((again.handle, again.attr.uid), (c.handle, USER));
}

#[test]
fn non_root_callers() {
    let (dir, fs) = setup();
    let r = fs.root();
    let open = lookup(&fs, &r, "open");
    put(&dir.path().join("rootfile"), b"root's", 0o644);
    let rootfile = lookup(&fs, &r, "rootfile");
    for who in [user(USER), user(SQUASHED)] {
        let uid = who.uid;
        // A 0755 root directory: no creating, removing or linking there.
        let unchecked = CreateMode::Unchecked(mode(0o644));
        assert_eq!(
            fs.create(&who, &r, b"no", &unchecked).unwrap_err(),
            Error::Access
        );
        assert_eq!(
            fs.mkdir(&who, &r, b"no", &mode(0o755)).unwrap_err(),
            Error::Access
        );
        assert_eq!(fs.remove(&who, &r, b"rootfile").unwrap_err(), Error::Access);
        // A 0644 root file: no writing, truncating, chmod or chown.
        assert_eq!(
            fs.write(&who, &rootfile, 0, b"x", Stability::FileSync)
                .unwrap_err(),
            Error::Access
        );
        let size0 = SetAttrs {
            size_bytes: Some(0),
            ..SetAttrs::default()
        };
        assert_eq!(
            fs.setattr(&who, &rootfile, &size0, None).unwrap_err(),
            Error::Access
        );
        assert_eq!(
            fs.setattr(&who, &rootfile, &mode(0o666), None).unwrap_err(),
            Error::Perm
        );
        let chown = SetAttrs {
            uid: Some(uid),
            ..SetAttrs::default()
        };
        assert_eq!(
            fs.setattr(&who, &rootfile, &chown, None).unwrap_err(),
            Error::Perm
        );
        assert_eq!(fs.commit(&who, &rootfile, 0, 0).unwrap_err(), Error::Access);
        // No devices.
        let dev = NodeKind::CharDevice { major: 1, minor: 3 };
        assert_eq!(
            fs.mknod(&who, &open, b"null", dev, &mode(0o666))
                .unwrap_err(),
            Error::Perm
        );
        let blk = NodeKind::BlockDevice { major: 7, minor: 0 };
        assert_eq!(
            fs.mknod(&who, &open, b"loop", blk, &mode(0o666))
                .unwrap_err(),
            Error::Perm
        );
        // In a 0777 directory: create, owned by the caller (asking for another owner is ignored).
        let name = format!("mine-{uid}");
        let c = fs
            .create(
                &who,
                &open,
                name.as_bytes(),
                &CreateMode::Guarded(SetAttrs {
                    mode: Some(0o644),
                    uid: Some(0),
                    ..SetAttrs::default()
                }),
            )
            .unwrap();
        let m = fs::metadata(dir.path().join("open").join(&name)).unwrap();
        assert_eq!((m.uid(), m.gid(), c.attr.uid), (uid, uid, uid));
        let w = fs
            .write(&who, &c.handle, 0, b"hello", Stability::Unstable)
            .unwrap();
        assert_eq!(w.count, 5);
        fs.commit(&who, &c.handle, 0, 0).unwrap();
        assert_eq!(read_all(&fs, &who, &c.handle), b"hello");
        // Give it away: no. Change its mode: yes.
        let give = SetAttrs {
            uid: Some(OTHER),
            ..SetAttrs::default()
        };
        assert_eq!(
            fs.setattr(&who, &c.handle, &give, None).unwrap_err(),
            Error::Perm
        );
        fs.setattr(&who, &c.handle, &mode(0o600), None).unwrap();
        // FIFOs and sockets are fine.
        let fifo = format!("fifo-{uid}");
        let f = fs
            .mknod(&who, &open, fifo.as_bytes(), NodeKind::Fifo, &mode(0o600))
            .unwrap();
        assert_eq!((f.attr.file_type, f.attr.uid), (FileType::Fifo, uid));
        let sock = format!("sock-{uid}");
        let s = fs
            .mknod(&who, &open, sock.as_bytes(), NodeKind::Socket, &mode(0o600))
            .unwrap();
        assert_eq!(s.attr.file_type, FileType::Socket);
    }
    // The two users cannot write each other's 0644 files.
    let mine = lookup(&fs, &open, &format!("mine-{USER}"));
    fs.setattr(&user(USER), &mine, &mode(0o644), None).unwrap();
    assert_eq!(
        fs.write(&user(SQUASHED), &mine, 0, b"x", Stability::Unstable)
            .unwrap_err(),
        Error::Access
    );
    assert_eq!(read_all(&fs, &user(SQUASHED), &mine), b"hello");
    // The owner may change the group to one of its groups, not to another.
    let member = Identity {
        uid: USER,
        gid: USER,
        groups: vec![4242],
    };
    let chgrp = |gid| SetAttrs {
        gid: Some(gid),
        ..SetAttrs::default()
    };
    fs.setattr(&member, &mine, &chgrp(4242), None).unwrap();
    assert_eq!(
        fs::metadata(dir.path().join(format!("open/mine-{USER}")))
            .unwrap()
            .gid(),
        4242
    );
    assert_eq!(
        fs.setattr(&member, &mine, &chgrp(4343), None).unwrap_err(),
        Error::Perm
    );
    assert!(!rnfs_sys::identity::is_switched());
}

// ---- SETATTR ----

#[test]
fn setattr_fields() {
    let (dir, fs) = setup();
    let r = fs.root();
    put(&dir.path().join("f"), b"0123456789", 0o644);
    let f = lookup(&fs, &r, "f");
    let wcc = fs
        .setattr(
            &root(),
            &f,
            &SetAttrs {
                mode: Some(0o4750),
                uid: Some(USER),
                gid: Some(4242),
                size_bytes: Some(4),
                atime: SetTime::ClientTime(Timestamp {
                    seconds: 1000,
                    nanoseconds: 7,
                }),
                mtime: SetTime::ClientTime(ts(2000)),
            },
            None,
        )
        .unwrap();
    assert_eq!(wcc.before.unwrap().size_bytes, 10);
    let a = wcc.after.unwrap();
    assert_eq!(
        (a.mode, a.uid, a.gid, a.size_bytes),
        (0o4750, USER, 4242, 4)
    );
    assert_eq!(
        (a.atime, a.mtime),
        (
            Timestamp {
                seconds: 1000,
                nanoseconds: 7
            },
            ts(2000)
        )
    );
    assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"0123");
    // Extending leaves zeros; server time is now.
    let atime = fs.getattr(&root(), &f).unwrap().atime; // the read above may have moved it
    let a = fs
        .setattr(
            &root(),
            &f,
            &SetAttrs {
                size_bytes: Some(6),
                mtime: SetTime::ServerTime,
                ..SetAttrs::default()
            },
            None,
        )
        .unwrap()
        .after
        .unwrap();
    assert!(a.mtime.seconds + 5 >= now_secs());
    assert_eq!(a.atime, atime, "left alone");
    assert_eq!(fs::read(dir.path().join("f")).unwrap(), b"0123\0\0");
    // An empty SETATTR changes nothing.
    let w = fs.setattr(&root(), &f, &SetAttrs::default(), None).unwrap();
    assert_eq!(w.before.unwrap().ctime, w.after.unwrap().ctime);

    // Symlinks: no mode (ignored), their own owner and times, never the target's.
    std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
    let l = lookup(&fs, &r, "l");
    let a = fs
        .setattr(
            &root(),
            &l,
            &SetAttrs {
                mode: Some(0o600),
                uid: Some(OTHER),
                mtime: SetTime::ClientTime(ts(3000)),
                ..SetAttrs::default()
            },
            None,
        )
        .unwrap()
        .after
        .unwrap();
    assert_eq!(
        (a.file_type, a.mode, a.uid, a.mtime),
        (FileType::Symlink, 0o777, OTHER, ts(3000))
    );
    let target = fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!((target.uid(), target.mode() & 0o7777), (USER, 0o4750));
    assert_ne!(target.mtime(), 3000);
    let size0 = SetAttrs {
        size_bytes: Some(0),
        ..SetAttrs::default()
    };
    assert_eq!(
        fs.setattr(&root(), &l, &size0, None).unwrap_err(),
        Error::Inval
    );
    assert_eq!(
        fs.setattr(&root(), &r, &size0, None).unwrap_err(),
        Error::IsDir
    );
    assert_eq!(
        fs.setattr(
            &root(),
            &f,
            &SetAttrs {
                size_bytes: Some(u64::MAX),
                ..SetAttrs::default()
            },
            None
        )
        .unwrap_err(),
        Error::FBig
    );
}

#[test]
fn setattr_guard() {
    let (dir, fs) = setup();
    put(&dir.path().join("f"), b"x", 0o644);
    let f = lookup(&fs, &fs.root(), "f");
    let ctime = fs.getattr(&root(), &f).unwrap().ctime;
    let wrong = Timestamp {
        seconds: ctime.seconds - 1,
        ..ctime
    };
    assert_eq!(
        fs.setattr(&root(), &f, &mode(0o600), Some(wrong))
            .unwrap_err(),
        Error::NotSync
    );
    assert_eq!(
        fs.getattr(&root(), &f).unwrap().mode,
        0o644,
        "nothing changed"
    );
    let w = fs.setattr(&root(), &f, &mode(0o600), Some(ctime)).unwrap();
    assert_eq!(w.before.unwrap().ctime, ctime);
    let after = w.after.unwrap();
    assert_eq!(after.mode, 0o600);
    // The old ctime no longer matches.
    if after.ctime != ctime {
        assert_eq!(
            fs.setattr(&root(), &f, &mode(0o644), Some(ctime))
                .unwrap_err(),
            Error::NotSync
        );
    }
}

#[test]
fn owner_may_write_and_truncate_read_only_files() {
    // RFC 1813 §4.4: open(O_CREAT|O_WRONLY, 0444) then write must work over NFS too.
    let (dir, fs) = setup();
    let open = lookup(&fs, &fs.root(), "open");
    let me = user(USER);
    let f = guarded(&fs, &me, &open, "ro", 0o444);
    fs.write(&me, &f, 0, b"object", Stability::Unstable)
        .unwrap();
    fs.commit(&me, &f, 0, 0).unwrap();
    assert_eq!(read_all(&fs, &me, &f), b"object");
    let size2 = SetAttrs {
        size_bytes: Some(2),
        ..SetAttrs::default()
    };
    fs.setattr(&me, &f, &size2, None).unwrap();
    assert_eq!(fs::read(dir.path().join("open/ro")).unwrap(), b"ob");
    // Not for others, even with a group-writable directory.
    assert_eq!(
        fs.write(&user(OTHER), &f, 0, b"x", Stability::Unstable)
            .unwrap_err(),
        Error::Access
    );
    assert_eq!(
        fs.setattr(&user(OTHER), &f, &size2, None).unwrap_err(),
        Error::Access
    );
    // Times: another user with write permission may set them to now, not to a chosen time.
    fs.setattr(&me, &f, &mode(0o666), None).unwrap();
    let now = SetAttrs {
        atime: SetTime::ServerTime,
        mtime: SetTime::ServerTime,
        ..SetAttrs::default()
    };
    fs.setattr(&user(OTHER), &f, &now, None).unwrap();
    let chosen = SetAttrs {
        mtime: SetTime::ClientTime(ts(5)),
        ..SetAttrs::default()
    };
    assert_eq!(
        fs.setattr(&user(OTHER), &f, &chosen, None).unwrap_err(),
        Error::Perm
    );
    fs.setattr(&me, &f, &chosen, None).unwrap();
}

#[test]
fn executables_may_be_read() {
    // RFC 1813 §4.4: a client must read a program to execute it.
    let (dir, fs) = setup();
    put(&dir.path().join("prog"), b"\x7fELF", 0o711);
    put(&dir.path().join("none"), b"secret", 0o700);
    let r = fs.root();
    let prog = lookup(&fs, &r, "prog");
    let none = lookup(&fs, &r, "none");
    assert_eq!(read_all(&fs, &user(USER), &prog), b"\x7fELF");
    assert_eq!(
        fs.read(&user(USER), &none, 0, 10).unwrap_err(),
        Error::Access
    );
    assert_eq!(
        fs.write(&user(USER), &prog, 0, b"x", Stability::Unstable)
            .unwrap_err(),
        Error::Access
    );
}

// ---- WRITE, COMMIT ----

#[test]
fn write_stability_and_commit() {
    let (_dir, fs) = setup();
    let r = fs.root();
    let f = guarded(&fs, &root(), &r, "f", 0o644);
    let w = fs
        .write(&root(), &f, 0, b"hello ", Stability::Unstable)
        .unwrap();
    assert_eq!((w.count, w.committed), (6, Stability::Unstable));
    assert_eq!(w.file.before.unwrap().size_bytes, 0);
    assert_eq!(w.file.after.unwrap().size_bytes, 6);
    let w = fs
        .write(&root(), &f, 6, b"world", Stability::DataSync)
        .unwrap();
    assert_eq!((w.count, w.committed), (5, Stability::DataSync));
    let w = fs
        .write(&root(), &f, 11, b"!", Stability::FileSync)
        .unwrap();
    assert_eq!((w.count, w.committed), (1, Stability::FileSync));
    let wcc = fs.commit(&root(), &f, 0, 0).unwrap();
    assert_eq!(wcc.after.unwrap().size_bytes, 12);
    assert_eq!(read_all(&fs, &root(), &f), b"hello world!");
    assert_eq!(fs.writeback_errors(), 0);
    // Only regular files.
    assert_eq!(
        fs.write(&root(), &r, 0, b"x", Stability::Unstable)
            .unwrap_err(),
        Error::IsDir
    );
    assert_eq!(fs.commit(&root(), &r, 0, 0).unwrap_err(), Error::IsDir);
    let fifo = fs
        .mknod(&root(), &r, b"fifo", NodeKind::Fifo, &mode(0o666))
        .unwrap()
        .handle;
    assert_eq!(
        fs.write(&root(), &fifo, 0, b"x", Stability::Unstable)
            .unwrap_err(),
        Error::Inval
    );
    let l = fs
        .symlink(&root(), &r, b"l", b"f", &SetAttrs::default())
        .unwrap()
        .handle;
    assert_eq!(
        fs.write(&root(), &l, 0, b"x", Stability::Unstable)
            .unwrap_err(),
        Error::Inval
    );
    assert_eq!(
        fs.write(&root(), &f, u64::MAX - 1, b"xx", Stability::Unstable)
            .unwrap_err(),
        Error::FBig
    );
}

#[test]
fn write_beyond_eof_leaves_a_hole() {
    let (dir, fs) = setup();
    let f = guarded(&fs, &root(), &fs.root(), "sparse", 0o644);
    let at = 8 << 20;
    let w = fs
        .write(&root(), &f, at, b"tail", Stability::FileSync)
        .unwrap();
    let a = w.file.after.unwrap();
    assert_eq!(a.size_bytes, at + 4);
    assert!(a.used_bytes < 1 << 20, "allocated {}", a.used_bytes);
    let head = fs.read(&root(), &f, 0, 4096).unwrap();
    assert!(head.data.iter().all(|&b| b == 0) && head.data.len() == 4096 && !head.eof);
    let tail = fs.read(&root(), &f, at, 100).unwrap();
    assert_eq!((tail.data.as_ref(), tail.eof), (&b"tail"[..], true));
    assert_eq!(
        fs::metadata(dir.path().join("sparse")).unwrap().len(),
        at + 4
    );
}

#[test]
fn non_root_write_clears_setuid() {
    // Data is written as the caller, so the kernel drops set-user-ID as for a local write.
    let (dir, fs) = setup();
    put(&dir.path().join("suid"), b"#!", 0o4777);
    let f = lookup(&fs, &fs.root(), "suid");
    let w = fs
        .write(&user(USER), &f, 2, b"x", Stability::Unstable)
        .unwrap();
    assert_eq!(w.file.after.unwrap().mode & 0o4000, 0);
    assert_eq!(
        fs::metadata(dir.path().join("suid")).unwrap().mode() & 0o7777,
        0o777
    );
}

#[test]
fn concurrent_unstable_stream_then_commit() {
    let (dir, fs) = setup();
    let fs = Arc::new(fs);
    let f = guarded(&fs, &root(), &fs.root(), "big", 0o666);
    const CHUNK: usize = 4096;
    let threads: Vec<_> = (0..4u8)
        .map(|t| {
            let (fs, f) = (fs.clone(), f.clone());
            std::thread::spawn(move || {
                let who = if t % 2 == 0 { root() } else { user(USER) };
                for i in 0..32u64 {
                    let n = i * 4 + u64::from(t);
                    let data = vec![n as u8; CHUNK];
                    let w = fs
                        .write(&who, &f, n * CHUNK as u64, &data, Stability::Unstable)
                        .unwrap();
                    assert_eq!(w.count as usize, CHUNK);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    fs.commit(&root(), &f, 0, 0).unwrap();
    assert_eq!(fs.open_files(), 1);
    let data = fs::read(dir.path().join("big")).unwrap();
    assert_eq!(data.len(), 128 * CHUNK);
    for (n, chunk) in data.chunks(CHUNK).enumerate() {
        assert!(chunk.iter().all(|&b| b == n as u8), "chunk {n}");
    }
    assert_eq!(fs.writeback_errors(), 0);
}

// ---- MKDIR, SYMLINK, MKNOD ----

#[test]
fn mkdir_symlink_mknod() {
    let (dir, fs) = setup();
    let r = fs.root();
    let d = fs.mkdir(&root(), &r, b"d", &mode(0o751)).unwrap();
    assert_eq!(
        (d.attr.file_type, d.attr.mode),
        (FileType::Directory, 0o751)
    );
    assert_eq!(lookup(&fs, &r, "d"), d.handle);
    assert_eq!(
        fs.mkdir(&root(), &r, b"d", &mode(0o755)).unwrap_err(),
        Error::Exist
    );
    assert_eq!(
        fs.mkdir(&root(), &r, b".", &mode(0o755)).unwrap_err(),
        Error::Exist
    );
    assert_eq!(
        fs.mkdir(&root(), &r, b"..", &mode(0o755)).unwrap_err(),
        Error::Exist
    );
    let d2 = fs
        .mkdir(
            &root(),
            &d.handle,
            b"sub",
            &SetAttrs {
                uid: Some(USER),
                gid: Some(USER),
                mtime: SetTime::ClientTime(ts(777)),
                ..SetAttrs::default()
            },
        )
        .unwrap();
    assert_eq!(
        (d2.attr.mode, d2.attr.uid, d2.attr.gid, d2.attr.mtime),
        (0o700, USER, USER, ts(777))
    );

    // Symlink targets are stored verbatim and never resolved.
    for (name, target) in [
        ("up", &b"../../../../etc/passwd"[..]),
        ("abs", b"/"),
        ("odd", b"a//b/./"),
    ] {
        let s = fs
            .symlink(&root(), &r, name.as_bytes(), target, &SetAttrs::default())
            .unwrap();
        assert_eq!(s.attr.file_type, FileType::Symlink);
        assert_eq!(fs.readlink(&root(), &s.handle).unwrap().0.as_ref(), target);
        assert_eq!(
            fs::read_link(dir.path().join(name))
                .unwrap()
                .as_os_str()
                .len(),
            target.len()
        );
    }
    let up = lookup(&fs, &r, "up");
    assert_eq!(fs.lookup(&root(), &up, b"x").unwrap_err(), Error::NotDir);
    assert_eq!(
        fs.symlink(&root(), &r, b"up", b"x", &SetAttrs::default())
            .unwrap_err(),
        Error::Exist
    );
    assert_eq!(
        fs.symlink(&root(), &r, b"empty", b"", &SetAttrs::default())
            .unwrap_err(),
        Error::NoEnt
    );
    assert_eq!(
        fs.symlink(&root(), &r, b"nul", b"a\0b", &SetAttrs::default())
            .unwrap_err(),
        Error::Inval
    );
    // Symlink owner and times, set on the link.
    let s = fs
        .symlink(
            &root(),
            &r,
            b"owned",
            b"d",
            &SetAttrs {
                uid: Some(USER),
                mtime: SetTime::ClientTime(ts(99)),
                ..SetAttrs::default()
            },
        )
        .unwrap();
    assert_eq!((s.attr.uid, s.attr.mtime), (USER, ts(99)));
    assert_eq!(fs::metadata(dir.path().join("d")).unwrap().uid(), 0);

    // Special files.
    let n = fs
        .mknod(
            &root(),
            &r,
            b"null",
            NodeKind::CharDevice { major: 1, minor: 3 },
            &mode(0o666),
        )
        .unwrap();
    assert_eq!(
        (n.attr.file_type, n.attr.rdev, n.attr.mode),
        (FileType::CharDevice, (1, 3), 0o666)
    );
    let m = fs::metadata(dir.path().join("null")).unwrap();
    assert!(m.file_type().is_char_device());
    let b = fs
        .mknod(
            &root(),
            &r,
            b"blk",
            NodeKind::BlockDevice {
                major: 259,
                minor: 70000,
            },
            &SetAttrs::default(),
        )
        .unwrap();
    assert_eq!(
        (b.attr.file_type, b.attr.rdev, b.attr.mode),
        (FileType::BlockDevice, (259, 70000), 0o600)
    );
    let f = fs
        .mknod(&root(), &r, b"fifo", NodeKind::Fifo, &mode(0o620))
        .unwrap();
    assert_eq!((f.attr.file_type, f.attr.mode), (FileType::Fifo, 0o620));
    assert!(fs::metadata(dir.path().join("fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let s = fs
        .mknod(&root(), &r, b"sock", NodeKind::Socket, &mode(0o600))
        .unwrap();
    assert!(fs::symlink_metadata(dir.path().join("sock"))
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(s.attr.file_type, FileType::Socket);
    assert_eq!(
        fs.mknod(&root(), &r, b"fifo", NodeKind::Fifo, &mode(0o600))
            .unwrap_err(),
        Error::Exist
    );
    assert_eq!(
        fs.mknod(&root(), &r, b"..", NodeKind::Fifo, &mode(0o600))
            .unwrap_err(),
        Error::Exist
    );
    // Reading a device or FIFO through NFS is refused, never opened.
    assert_eq!(fs.read(&root(), &n.handle, 0, 1).unwrap_err(), Error::Inval);
    assert_eq!(fs.read(&root(), &f.handle, 0, 1).unwrap_err(), Error::Inval);
}

#[test]
fn wcc_shows_the_directory_change() {
    let (_dir, fs) = setup();
    let r = fs.root();
    let old = SetAttrs {
        mtime: SetTime::ClientTime(ts(1000)),
        ..SetAttrs::default()
    };
    let check = |wcc: &rnfs_storage::Wcc, what: &str| {
        let (before, after) = (wcc.before.unwrap(), wcc.after.as_ref().unwrap());
        assert_eq!(before.mtime, ts(1000), "{what}");
        assert!(after.mtime.seconds + 5 >= now_secs(), "{what}");
        assert!(after.ctime >= before.ctime, "{what}");
    };
    fs.setattr(&root(), &r, &old, None).unwrap();
    let c = fs
        .create(&root(), &r, b"f", &CreateMode::Guarded(mode(0o644)))
        .unwrap();
    check(&c.dir, "create");
    assert_eq!(
        c.dir.after.as_ref().unwrap().nlink,
        c.dir.after.as_ref().unwrap().nlink
    );
    fs.setattr(&root(), &r, &old, None).unwrap();
    let d = fs.mkdir(&root(), &r, b"d", &mode(0o755)).unwrap();
    check(&d.dir, "mkdir");
    assert_eq!(
        d.dir.after.as_ref().unwrap().nlink,
        4,
        "., .., open/.., d/.."
    );
    fs.setattr(&root(), &r, &old, None).unwrap();
    let (attr, wcc) = fs.link(&root(), &c.handle, &r, b"f2").unwrap();
    check(&wcc, "link");
    assert_eq!(attr.unwrap().nlink, 2);
    fs.setattr(&root(), &r, &old, None).unwrap();
    fs.setattr(&root(), &d.handle, &old, None).unwrap();
    let (from, to) = fs.rename(&root(), &r, b"f2", &d.handle, b"g").unwrap();
    check(&from, "rename from");
    check(&to, "rename to");
    fs.setattr(&root(), &r, &old, None).unwrap();
    check(&fs.remove(&root(), &r, b"f").unwrap(), "remove");
    fs.setattr(&root(), &r, &old, None).unwrap();
    let s = fs
        .symlink(&root(), &r, b"s", b"x", &SetAttrs::default())
        .unwrap();
    check(&s.dir, "symlink");
    fs.setattr(&root(), &r, &old, None).unwrap();
    let n = fs
        .mknod(&root(), &r, b"n", NodeKind::Fifo, &mode(0o600))
        .unwrap();
    check(&n.dir, "mknod");
    fs.setattr(&root(), &r, &old, None).unwrap();
    fs.remove(&root(), &d.handle, b"g").unwrap();
    check(&fs.rmdir(&root(), &r, b"d").unwrap(), "rmdir");
}

// ---- REMOVE, RMDIR ----

#[test]
fn remove_and_rmdir() {
    let (dir, fs) = setup();
    let r = fs.root();
    put(&dir.path().join("f"), b"x", 0o644);
    fs::create_dir_all(dir.path().join("full/inner")).unwrap();
    fs::create_dir(dir.path().join("empty")).unwrap();
    let f = lookup(&fs, &r, "f");
    assert_eq!(
        fs.remove(&root(), &r, b"missing").unwrap_err(),
        Error::NoEnt
    );
    assert_eq!(fs.remove(&root(), &r, b"empty").unwrap_err(), Error::IsDir);
    assert_eq!(fs.remove(&root(), &r, b".").unwrap_err(), Error::IsDir);
    assert_eq!(fs.remove(&root(), &r, b"..").unwrap_err(), Error::IsDir);
    assert_eq!(fs.remove(&root(), &r, b"a/b").unwrap_err(), Error::Access);
    assert_eq!(fs.remove(&root(), &f, b"x").unwrap_err(), Error::NotDir);
    fs.remove(&root(), &r, b"f").unwrap();
    assert!(!dir.path().join("f").exists());
    assert_eq!(fs.getattr(&root(), &f).unwrap_err(), Error::Stale);
    assert_eq!(fs.remove(&root(), &r, b"f").unwrap_err(), Error::NoEnt);

    assert_eq!(fs.rmdir(&root(), &r, b"full").unwrap_err(), Error::NotEmpty);
    assert_eq!(fs.rmdir(&root(), &r, b".").unwrap_err(), Error::Inval);
    assert_eq!(fs.rmdir(&root(), &r, b"..").unwrap_err(), Error::NotEmpty);
    put(&dir.path().join("file"), b"", 0o644);
    assert_eq!(fs.rmdir(&root(), &r, b"file").unwrap_err(), Error::NotDir);
    assert_eq!(fs.rmdir(&root(), &r, b"missing").unwrap_err(), Error::NoEnt);
    let empty = lookup(&fs, &r, "empty");
    fs.rmdir(&root(), &r, b"empty").unwrap();
    assert!(!dir.path().join("empty").exists());
    assert_eq!(fs.getattr(&root(), &empty).unwrap_err(), Error::Stale);
    assert_eq!(
        fs.create(&root(), &empty, b"x", &CreateMode::Unchecked(mode(0o644)))
            .unwrap_err(),
        Error::Stale
    );

    // The sticky bit: in a 1777 directory only a file's owner removes it.
    fs::set_permissions(dir.path().join("open"), fs::Permissions::from_mode(0o1777)).unwrap();
    let open = lookup(&fs, &r, "open");
    put(&dir.path().join("open/roots"), b"", 0o666);
    assert_eq!(
        fs.remove(&user(USER), &open, b"roots").unwrap_err(),
        Error::Perm
    );
    guarded(&fs, &user(USER), &open, "users", 0o644);
    fs.remove(&user(USER), &open, b"users").unwrap();
    fs.mkdir(&user(USER), &open, b"udir", &mode(0o755)).unwrap();
    assert_eq!(
        fs.rmdir(&user(OTHER), &open, b"udir").unwrap_err(),
        Error::Perm
    );
    fs.rmdir(&user(USER), &open, b"udir").unwrap();
}

// ---- RENAME, LINK ----

#[test]
fn rename_cases() {
    let (dir, fs) = setup();
    let r = fs.root();
    put(&dir.path().join("a"), b"A", 0o644);
    put(&dir.path().join("b"), b"B", 0o644);
    fs::create_dir_all(dir.path().join("d/sub/deeper")).unwrap();
    fs::create_dir_all(dir.path().join("full/x")).unwrap();
    fs::create_dir(dir.path().join("emptydir")).unwrap();
    let a = lookup(&fs, &r, "a");
    let b = lookup(&fs, &r, "b");
    let d = lookup(&fs, &r, "d");
    let sub = lookup(&fs, &d, "sub");
    // Over an existing file: atomic, the target's handle goes stale, the source's stays.
    assert_eq!(read_all(&fs, &root(), &b), b"B"); // cached now
    fs.rename(&root(), &r, b"a", &r, b"b").unwrap();
    assert_eq!(fs::read(dir.path().join("b")).unwrap(), b"A");
    assert_eq!(fs.read(&root(), &b, 0, 1).unwrap_err(), Error::Stale);
    assert_eq!(read_all(&fs, &root(), &a), b"A");
    assert_eq!(lookup(&fs, &r, "b"), a);
    // Across directories.
    fs.rename(&root(), &r, b"b", &sub, b"moved").unwrap();
    assert_eq!(lookup(&fs, &sub, "moved"), a);
    assert_eq!(
        fs.rename(&root(), &r, b"b", &r, b"c").unwrap_err(),
        Error::NoEnt
    );
    // A directory into its own subtree: the kernel refuses.
    assert_eq!(
        fs.rename(&root(), &r, b"d", &sub, b"loop").unwrap_err(),
        Error::Inval
    );
    let deeper = lookup(&fs, &sub, "deeper");
    assert_eq!(
        fs.rename(&root(), &r, b"d", &deeper, b"d").unwrap_err(),
        Error::Inval
    );
    // Directory over a non-empty directory, over an empty one, type mismatches.
    assert_eq!(
        fs.rename(&root(), &r, b"d", &r, b"full").unwrap_err(),
        Error::NotEmpty
    );
    fs.rename(&root(), &r, b"d", &r, b"emptydir").unwrap();
    assert_eq!(lookup(&fs, &r, "emptydir"), d);
    put(&dir.path().join("f"), b"", 0o644);
    assert_eq!(
        fs.rename(&root(), &r, b"f", &r, b"full").unwrap_err(),
        Error::IsDir
    );
    assert_eq!(
        fs.rename(&root(), &r, b"full", &r, b"f").unwrap_err(),
        Error::NotDir
    );
    // Dot names and bad names.
    for (from, to) in [
        (&b"."[..], &b"x"[..]),
        (b"..", b"x"),
        (b"f", b"."),
        (b"f", b".."),
    ] {
        assert_eq!(
            fs.rename(&root(), &r, from, &r, to).unwrap_err(),
            Error::Inval
        );
    }
    assert_eq!(
        fs.rename(&root(), &r, b"f", &r, b"a/b").unwrap_err(),
        Error::Access
    );
    let f = lookup(&fs, &r, "f");
    assert_eq!(
        fs.rename(&root(), &f, b"x", &r, b"y").unwrap_err(),
        Error::NotDir
    );
    assert_eq!(
        fs.rename(&root(), &r, b"f", &f, b"y").unwrap_err(),
        Error::NotDir
    );
    // Renaming onto itself (or another link to it) is a no-op.
    fs.rename(&root(), &r, b"f", &r, b"f").unwrap();
    assert_eq!(lookup(&fs, &r, "f"), f);
    // As a caller without write permission on the directory.
    assert_eq!(
        fs.rename(&user(USER), &r, b"f", &r, b"g").unwrap_err(),
        Error::Access
    );
    // Between two exports.
    let other = LocalFs::new(2, &dir.path().join("full"), HandleKey::random().unwrap()).unwrap();
    assert_eq!(
        fs.rename(&root(), &r, b"f", &other.root(), b"f")
            .unwrap_err(),
        Error::XDev
    );
    assert_eq!(
        other
            .rename(&root(), &other.root(), b"x", &r, b"x")
            .unwrap_err(),
        Error::XDev
    );
    assert!(dir.path().join("full/x").exists() && dir.path().join("f").exists());
}

#[test]
fn link_cases() {
    let (dir, fs) = setup();
    let r = fs.root();
    put(&dir.path().join("f"), b"data", 0o644);
    fs::create_dir(dir.path().join("d")).unwrap();
    std::os::unix::fs::symlink("f", dir.path().join("l")).unwrap();
    let f = lookup(&fs, &r, "f");
    let d = lookup(&fs, &r, "d");
    let (attr, wcc) = fs.link(&root(), &f, &d, b"f2").unwrap();
    assert_eq!(attr.unwrap().nlink, 2);
    assert!(wcc.after.is_some());
    assert_eq!(lookup(&fs, &d, "f2"), f);
    assert_eq!(fs::read(dir.path().join("d/f2")).unwrap(), b"data");
    assert_eq!(fs.link(&root(), &f, &d, b"f2").unwrap_err(), Error::Exist);
    assert_eq!(fs.link(&root(), &f, &d, b".").unwrap_err(), Error::Exist);
    assert_eq!(fs.link(&root(), &f, &d, b"..").unwrap_err(), Error::Exist);
    assert_eq!(fs.link(&root(), &f, &f, b"x").unwrap_err(), Error::NotDir);
    assert_eq!(
        fs.link(&root(), &d, &r, b"dirlink").unwrap_err(),
        Error::Perm
    );
    // A symlink is linked itself.
    let l = lookup(&fs, &r, "l");
    fs.link(&root(), &l, &r, b"l2").unwrap();
    assert_eq!(
        fs::read_link(dir.path().join("l2")).unwrap(),
        Path::new("f")
    );
    // Permissions are the caller's: fs.protected_hardlinks (no linking of others' files one may
    // not read and write)...
    let open = lookup(&fs, &r, "open");
    let protected = fs::read_to_string("/proc/sys/fs/protected_hardlinks").unwrap_or_default();
    if protected.trim() == "1" {
        assert_eq!(
            fs.link(&user(USER), &f, &open, b"x").unwrap_err(),
            Error::Perm
        );
    }
    let mine = guarded(&fs, &user(USER), &open, "mine", 0o600);
    fs.link(&user(USER), &mine, &open, b"mine2").unwrap();
    // ...and write permission on the directory.
    assert_eq!(
        fs.link(&user(USER), &mine, &d, b"x").unwrap_err(),
        Error::Access
    );
    // Between exports.
    let other = LocalFs::new(2, &dir.path().join("d"), HandleKey::random().unwrap()).unwrap();
    assert_eq!(
        fs.link(&root(), &f, &other.root(), b"x").unwrap_err(),
        Error::XDev
    );
    assert_eq!(
        other.link(&root(), &f, &other.root(), b"x").unwrap_err(),
        Error::XDev
    );
    // A removed file cannot be linked back.
    fs.remove(&root(), &r, b"f").unwrap();
    fs.remove(&root(), &d, b"f2").unwrap();
    assert_eq!(fs.link(&root(), &f, &r, b"back").unwrap_err(), Error::Stale);
}

// ---- The open-file cache ----

#[test]
fn removed_or_replaced_cached_files_are_stale() {
    let (dir, fs) = setup();
    let r = fs.root();
    let f = guarded(&fs, &root(), &r, "f", 0o644);
    fs.write(&root(), &f, 0, b"unstable", Stability::Unstable)
        .unwrap();
    assert_eq!(fs.open_files(), 1);
    // REMOVE through the backend: its entry goes, later calls are stale.
    fs.remove(&root(), &r, b"f").unwrap();
    assert_eq!(fs.open_files(), 0);
    assert_eq!(fs.read(&root(), &f, 0, 1).unwrap_err(), Error::Stale);
    assert_eq!(
        fs.write(&root(), &f, 0, b"x", Stability::Unstable)
            .unwrap_err(),
        Error::Stale
    );
    assert_eq!(fs.commit(&root(), &f, 0, 0).unwrap_err(), Error::Stale);
    assert_eq!(fs.getattr(&root(), &f).unwrap_err(), Error::Stale);

    // Removed by a local process while cached (read and write entries alike).
    for usage in ["read", "write"] {
        let path = dir.path().join(usage);
        put(&path, b"local", 0o644);
        let h = lookup(&fs, &r, usage);
        if usage == "read" {
            assert_eq!(read_all(&fs, &root(), &h), b"local");
        } else {
            fs.write(&root(), &h, 5, b"!", Stability::Unstable).unwrap();
        }
        assert_eq!(fs.open_files(), 1);
        fs::remove_file(&path).unwrap();
        assert_eq!(fs.read(&root(), &h, 0, 1).unwrap_err(), Error::Stale);
        assert_eq!(fs.open_files(), 0);
        assert_eq!(fs.getattr(&root(), &h).unwrap_err(), Error::Stale);
    }
    // Renamed over, by the backend and locally.
    put(&dir.path().join("victim"), b"v", 0o644);
    put(&dir.path().join("new"), b"n", 0o644);
    let victim = lookup(&fs, &r, "victim");
    assert_eq!(read_all(&fs, &root(), &victim), b"v");
    fs::rename(dir.path().join("new"), dir.path().join("victim")).unwrap();
    assert_eq!(fs.read(&root(), &victim, 0, 1).unwrap_err(), Error::Stale);
    // A hard link keeps the file alive: not stale.
    put(&dir.path().join("linked"), b"l", 0o644);
    fs::hard_link(dir.path().join("linked"), dir.path().join("other-name")).unwrap();
    let linked = lookup(&fs, &r, "linked");
    assert_eq!(read_all(&fs, &root(), &linked), b"l");
    fs.remove(&root(), &r, b"linked").unwrap();
    assert_eq!(read_all(&fs, &root(), &linked), b"l");
    assert_eq!(fs.writeback_errors(), 0);
}

#[test]
fn open_file_cache_is_bounded() {
    let (dir, fs) = setup();
    let fs = fs.with_open_files(8);
    assert_eq!(fs.open_file_limit(), 8);
    let r = fs.root();
    let handles: Vec<FileHandle> = (0..40)
        .map(|i| {
            put(
                &dir.path().join(format!("f{i}")),
                format!("file {i}").as_bytes(),
                0o644,
            );
            lookup(&fs, &r, &format!("f{i}"))
        })
        .collect();
    for round in 0..3 {
        for (i, h) in handles.iter().enumerate() {
            let data = read_all(&fs, &user(USER), h);
            assert!(data.starts_with(format!("file {i}").as_bytes()));
            assert!(
                fs.open_files() <= 8,
                "round {round}, file {i}: {}",
                fs.open_files()
            );
            if round == 1 {
                // Unstable writes on entries soon evicted: synced on eviction, nothing lost.
                fs.write(&root(), h, 100, b"+", Stability::Unstable)
                    .unwrap();
                assert!(fs.open_files() <= 8);
            }
        }
    }
    for (i, h) in handles.iter().enumerate() {
        let data = read_all(&fs, &root(), h);
        assert_eq!(
            &data[..format!("file {i}").len()],
            format!("file {i}").as_bytes()
        );
        assert_eq!(data.len(), 101);
    }
    assert_eq!(fs.open_files(), 8);
    assert_eq!(fs.writeback_errors(), 0);

    // Many threads hammering a cache of 3.
    let fs = Arc::new(fs.with_open_files(3));
    let handles = Arc::new(handles);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let (fs, handles) = (fs.clone(), handles.clone());
            std::thread::spawn(move || {
                for k in 0..200 {
                    let i = (k * 7 + t * 13) % handles.len();
                    let data = fs.read(&root(), &handles[i], 0, 5).unwrap().data;
                    assert_eq!(data.as_ref(), b"file ");
                    assert!(fs.open_files() <= 3);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn idle_files_are_closed() {
    let (dir, fs) = setup();
    let r = fs.root();
    let a = guarded(&fs, &root(), &r, "a", 0o644);
    let b = guarded(&fs, &root(), &r, "b", 0o644);
    fs.write(&root(), &a, 0, b"dirty", Stability::Unstable)
        .unwrap();
    assert_eq!(read_all(&fs, &root(), &b), b"");
    assert_eq!(fs.open_files(), 2);
    fs.close_idle_files(); // both were used in this round
    assert_eq!(fs.open_files(), 2);
    assert_eq!(read_all(&fs, &root(), &b), b"");
    fs.close_idle_files(); // a was not used since: synced and closed
    assert_eq!(fs.open_files(), 1);
    fs.close_idle_files();
    assert_eq!(fs.open_files(), 0);
    assert_eq!(fs::read(dir.path().join("a")).unwrap(), b"dirty");
    assert_eq!(fs.writeback_errors(), 0);
}

#[test]
fn reading_does_not_keep_a_file_open_for_writing() {
    // A READ caches a read-only descriptor, so the server can still execute the file; only a
    // WRITE opens it read-write (ETXTBSY for execve until the entry is closed).
    let (dir, fs) = setup();
    let Some((prog, bin)) = copy_of_true(dir.path()) else {
        return eprintln!("skipped: no /bin/true");
    };
    let h = lookup(&fs, &fs.root(), "true");
    assert!(!fs.read(&root(), &h, 0, 4).unwrap().data.is_empty());
    assert!(std::process::Command::new(&prog)
        .status()
        .unwrap()
        .success());
    let w = fs
        .write(&root(), &h, 0, &bin[..4], Stability::FileSync)
        .unwrap();
    assert_eq!(w.count, 4);
    let busy = std::process::Command::new(&prog).status();
    assert_eq!(busy.unwrap_err().raw_os_error(), Some(libc::ETXTBSY));
    fs.close_idle_files();
    fs.close_idle_files();
    assert!(std::process::Command::new(&prog)
        .status()
        .unwrap()
        .success());
}

/// Once writes stop, a read-write descriptor is closed after two housekeeping rounds however
/// busy READ and GETATTR keep it: they need no write permission, so anyone holding the handle
/// could otherwise keep the file open for writing (and a local `execve` of it failing with
/// ETXTBSY) for as long as they keep calling. Writes allowed to the caller keep it open.
#[test]
fn reads_alone_do_not_keep_a_file_open_for_writing() {
    let (dir, fs) = setup();
    let Some((prog, bin)) = copy_of_true(dir.path()) else {
        return eprintln!("skipped: no /bin/true");
    };
    let h = lookup(&fs, &fs.root(), "true");
    let exec = || std::process::Command::new(&prog).status();
    let (reader, writer) = (user(OTHER), root());
    fs.write(&writer, &h, 0, &bin[..4], Stability::FileSync)
        .unwrap();
    for round in 0..3 {
        // A writer still writing: the descriptor stays read-write.
        fs.write(&writer, &h, 0, &bin[..4], Stability::FileSync)
            .unwrap();
        fs.close_idle_files();
        let busy = exec().unwrap_err().raw_os_error();
        assert_eq!(busy, Some(libc::ETXTBSY), "round {round}: still written");
    }
    // Writes stop; a caller who may not write keeps reading, asking attributes and trying to write.
    for round in 0..2 {
        assert_eq!(read_all(&fs, &reader, &h), bin);
        fs.getattr(&reader, &h).unwrap();
        let denied = fs.write(&reader, &h, 0, b"x", Stability::Unstable);
        assert_eq!(denied.unwrap_err(), Error::Access);
        fs.close_idle_files();
        eprintln!("round {round}: {} open", fs.open_files());
    }
    assert!(
        exec().unwrap().success(),
        "closed for writing after two rounds"
    );
    assert_eq!(
        read_all(&fs, &reader, &h),
        bin,
        "and read-only from then on"
    );
    assert!(exec().unwrap().success());
    assert_eq!(fs::read(&prog).unwrap(), bin);
}

#[test]
fn denied_calls_open_nothing() {
    // Permission is decided before anything is opened: a denied WRITE, SETATTR of the size,
    // CREATE UNCHECKED with a size or COMMIT neither opens the file nor upgrades a cached
    // read-only entry (a descriptor open for writing makes execve fail with ETXTBSY).
    let (dir, fs) = setup();
    let Some((prog, bin)) = copy_of_true(dir.path()) else {
        return eprintln!("skipped: no /bin/true");
    };
    let r = fs.root();
    let h = lookup(&fs, &r, "true");
    let other = user(OTHER);
    let size0 = SetAttrs {
        size_bytes: Some(0),
        ..SetAttrs::default()
    };
    for cached in [false, true] {
        let at = if cached {
            "cached read-only"
        } else {
            "not cached"
        };
        let denied = [
            (
                "WRITE",
                fs.write(&other, &h, 0, b"x", Stability::Unstable).err(),
            ),
            ("SETATTR", fs.setattr(&other, &h, &size0, None).err()),
            (
                "CREATE",
                fs.create(&other, &r, b"true", &CreateMode::Unchecked(size0.clone()))
                    .err(),
            ),
            ("COMMIT", fs.commit(&other, &h, 0, 0).err()),
        ];
        for (what, e) in denied {
            assert_eq!(e, Some(Error::Access), "{what}, {at}");
        }
        assert_eq!(fs.open_files(), usize::from(cached), "{at}");
        let run = std::process::Command::new(&prog).status();
        assert!(run.as_ref().is_ok_and(|s| s.success()), "{at}: {run:?}");
        // The caller may read the program: READ caches it read-only.
        assert_eq!(read_all(&fs, &other, &h), bin);
    }
    assert_eq!(fs::read(&prog).unwrap(), bin);
    // An unreadable file: a denied READ opens nothing either.
    put(&dir.path().join("secret"), b"s", 0o600);
    let s = lookup(&fs, &r, "secret");
    assert_eq!(fs.read(&other, &s, 0, 1).unwrap_err(), Error::Access);
    assert_eq!(fs.open_files(), 1, "only the program's entry");
}

/// READ remembers the last permission it granted through a cached descriptor; the memory must
/// follow every change the answer depends on: the caller, its groups, and the file's mode, owner,
/// group and ACL (ctime), even when they change within one timestamp tick.
#[test]
fn remembered_read_permission_follows_the_caller_and_the_file() {
    let (dir, fs) = setup();
    let root_fh = fs.root();
    let open = lookup(&fs, &root_fh, "open");
    let path = dir.path().join("open/f");
    put(&path, b"data", 0o640);
    std::os::unix::fs::chown(&path, Some(OTHER), Some(3000)).unwrap();
    let f = lookup(&fs, &open, "f");
    let member = member_of(3000);
    let outsider = user(USER);
    // Granted through the group, then remembered: the next READ by the same caller is answered
    // from the memory, a READ by the same uid without the group is not.
    for _ in 0..2 {
        assert_eq!(read_all(&fs, &member, &f), b"data");
    }
    assert_eq!(fs.read(&outsider, &f, 0, 4).unwrap_err(), Error::Access);
    assert_eq!(read_all(&fs, &member, &f), b"data");
    // Each change to the file revokes what was remembered, immediately.
    let changes: [(&str, &dyn Fn()); 3] = [
        ("chmod 0600", &|| {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap()
        }),
        ("chgrp", &|| {
            std::os::unix::fs::chown(&path, None, Some(3001)).unwrap()
        }),
        ("chown to the caller, then to another", &|| {
            std::os::unix::fs::chown(&path, Some(USER), None).unwrap();
            std::os::unix::fs::chown(&path, Some(OTHER), None).unwrap();
        }),
    ];
    for (what, change) in changes {
        // Restore 0640 OTHER:3000 and let the member's READ be remembered again.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        std::os::unix::fs::chown(&path, Some(OTHER), Some(3000)).unwrap();
        assert_eq!(read_all(&fs, &member, &f), b"data", "before {what}");
        change();
        // chmod 0600 and chgrp 3001 take the member's access away; the double chown ends where
        // it started (0640 OTHER:3000), so the member reads again after the check reruns.
        let allowed = what.starts_with("chown");
        let r = fs.read(&member, &f, 0, 4);
        assert_eq!(r.is_ok(), allowed, "after {what}: {r:?}");
    }
}

#[test]
fn path_descriptor_cache_is_bounded_and_sees_removals() {
    let (dir, fs) = setup();
    let fs = fs.with_path_fds(8);
    assert_eq!(fs.path_fd_limit(), 8);
    let r = fs.root();
    for i in 0..40 {
        fs::create_dir(dir.path().join(format!("d{i}"))).unwrap();
        put(&dir.path().join(format!("d{i}/f")), b"x", 0o644);
    }
    let handles: Vec<FileHandle> = (0..40).map(|i| lookup(&fs, &r, &format!("d{i}"))).collect();
    for round in 0..2 {
        for h in &handles {
            fs.getattr(&root(), h).unwrap();
            fs.lookup(&user(USER), h, b"f").unwrap();
            assert!(fs.path_fds() <= 8, "round {round}: {}", fs.path_fds());
        }
    }
    assert!(fs.path_fds() > 0, "directories are cached");
    // Files are not: GETATTR of 40 files leaves the cache as it was.
    let before = fs.path_fds();
    for h in &handles {
        let f = lookup(&fs, h, "f");
        fs.getattr(&root(), &f).unwrap();
    }
    assert!(fs.path_fds() <= before);
    // A directory removed behind the server's back while its descriptor is cached: stale.
    let d = handles.last().unwrap();
    assert!(fs.getattr(&root(), d).is_ok());
    fs::remove_dir_all(dir.path().join("d39")).unwrap();
    assert_eq!(fs.getattr(&root(), d).unwrap_err(), Error::Stale);
    assert_eq!(fs.lookup(&root(), d, b"f").unwrap_err(), Error::Stale);
    // Idle descriptors close within two rounds of housekeeping.
    assert!(fs.path_fds() > 0);
    fs.close_idle_files();
    fs.close_idle_files();
    assert_eq!(fs.path_fds(), 0);
}

#[test]
fn remembered_search_permission_follows_the_caller_and_the_directory() {
    let (dir, fs) = setup();
    let root_fh = fs.root();
    let path = dir.path().join("open/d");
    fs::create_dir(&path).unwrap();
    put(&path.join("f"), b"x", 0o644);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o710)).unwrap();
    std::os::unix::fs::chown(&path, Some(OTHER), Some(3000)).unwrap();
    let open = lookup(&fs, &root_fh, "open");
    let d = lookup(&fs, &open, "d");
    let member = member_of(3000);
    let outsider = user(USER);
    // Granted through the group, then remembered; the same uid without the group is refused.
    for _ in 0..2 {
        assert!(fs.lookup(&member, &d, b"f").is_ok());
        assert!(fs.lookup(&member, &d, b".").is_ok());
    }
    assert_eq!(fs.lookup(&outsider, &d, b"f").unwrap_err(), Error::Access);
    assert_eq!(fs.lookup(&outsider, &d, b".").unwrap_err(), Error::Access);
    assert!(fs.lookup(&member, &d, b"f").is_ok());
    // A change to the directory revokes what was remembered, at once.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(fs.lookup(&member, &d, b"f").unwrap_err(), Error::Access);
    fs::set_permissions(&path, fs::Permissions::from_mode(0o710)).unwrap();
    assert!(fs.lookup(&member, &d, b"f").is_ok());
    std::os::unix::fs::chown(&path, None, Some(3001)).unwrap();
    assert_eq!(fs.lookup(&member, &d, b"f").unwrap_err(), Error::Access);
    // A missing name in a searchable directory is NOENT, remembered or not.
    std::os::unix::fs::chown(&path, None, Some(3000)).unwrap();
    for _ in 0..2 {
        assert_eq!(fs.lookup(&member, &d, b"nope").unwrap_err(), Error::NoEnt);
    }
}

/// Runs itself again in a private mount namespace (`unshare`), where it mounts a file system
/// whose timestamps are whole seconds (ext4 with 128-byte inodes, from an image): there a change
/// within the second of the previous one leaves the ctime as it was, even after the server
/// `fstat`ed it, and an ACL change moves neither owner nor mode. So nothing in a remembered
/// permission's key moves; a READ or LOOKUP grant made within that second must not be reused.
#[test]
fn remembered_permission_is_not_reused_after_a_change_within_one_tick() {
    common::in_mount_namespace(
        "remembered_permission_is_not_reused_after_a_change_within_one_tick",
        "RNFS_TEST_COARSE_FS_DIR",
        within_one_tick_inner,
    );
}

/// Tries to make the two changes of the test within one second.
const TICK_ATTEMPTS: usize = 20;

fn within_one_tick_inner(dir: &Path) {
    let img = dir.join("img");
    fs::File::create(&img).unwrap().set_len(16 << 20).unwrap();
    let mnt = dir.join("mnt");
    fs::create_dir(&mnt).unwrap();
    let ok = |cmd: &mut std::process::Command| cmd.output().is_ok_and(|o| o.status.success());
    let made = ok(std::process::Command::new("mkfs.ext4")
        .args(["-q", "-F", "-I", "128"])
        .arg(&img))
        && ok(std::process::Command::new("mount")
            .args(["-o", "loop"])
            .arg(&img)
            .arg(&mnt));
    if !made {
        return println!("skipped: cannot make and mount an ext4 image with 128-byte inodes");
    }
    fs::set_permissions(&mnt, fs::Permissions::from_mode(0o755)).unwrap();
    let file = mnt.join("f");
    put(&file, b"data", 0o640);
    let subdir = mnt.join("d");
    fs::create_dir(&subdir).unwrap();
    put(&subdir.join("x"), b"x", 0o644);
    for p in [&file, &subdir] {
        std::os::unix::fs::chown(p, Some(OTHER), Some(3000)).unwrap();
    }
    let fs = LocalFs::new(1, &mnt, HandleKey::random().unwrap()).unwrap();
    let (f, d) = (lookup(&fs, &fs.root(), "f"), lookup(&fs, &fs.root(), "d"));
    // USER is neither owner nor in group 3000: only a named ACL entry lets it in.
    let reader = user(USER);
    let key = |p: &Path| {
        let m = fs::metadata(p).unwrap();
        (m.ctime(), m.ctime_nsec(), m.mode(), m.uid(), m.gid())
    };
    for _ in 0..TICK_ATTEMPTS {
        set_acl(&file, 0o6, 0o4, Some(0o4));
        set_acl(&subdir, 0o7, 0o1, Some(0o1));
        let before = (key(&file), key(&subdir));
        assert_eq!(read_all(&fs, &reader, &f), b"data", "the ACL grants READ");
        assert!(
            fs.lookup(&reader, &d, b"x").is_ok(),
            "the ACL grants search"
        );
        set_acl(&file, 0o6, 0o4, None);
        set_acl(&subdir, 0o7, 0o1, None);
        let after = (key(&file), key(&subdir));
        if after != before {
            // A second began in between: the ctime moved, which proves nothing. Again.
            assert_eq!(
                (after.0 .2, after.1 .2),
                (before.0 .2, before.1 .2),
                "modes"
            );
            continue;
        }
        assert_eq!(
            fs.read(&reader, &f, 0, 4).unwrap_err(),
            Error::Access,
            "READ granted by an ACL entry removed within the same ctime tick"
        );
        assert_eq!(
            fs.lookup(&reader, &d, b"x").unwrap_err(),
            Error::Access,
            "LOOKUP granted by an ACL entry removed within the same ctime tick"
        );
        return;
    }
    panic!("no two changes within one second in {TICK_ATTEMPTS} attempts");
}

/// Sets the access ACL of `path` (`system.posix_acl_access`, Linux's xattr format): `owner` bits
/// for the owner, `group` bits for the group and as the mask, none for others, and `named` bits
/// for user USER if given. The mode's group bits are the mask's, so the mode is the same with or
/// without the named entry.
fn set_acl(path: &Path, owner: u16, group: u16, named: Option<u16>) {
    use std::os::unix::ffi::OsStrExt;
    const VERSION: u32 = 2;
    // Entry tags (ACL_USER_OBJ, ACL_USER, ACL_GROUP_OBJ, ACL_MASK, ACL_OTHER) and "no id".
    const USER_OBJ: u16 = 0x01;
    const NAMED_USER: u16 = 0x02;
    const GROUP_OBJ: u16 = 0x04;
    const MASK: u16 = 0x10;
    const EVERYONE: u16 = 0x20;
    const NO_ID: u32 = u32::MAX;
    let mut entries: Vec<(u16, u16, u32)> = vec![(USER_OBJ, owner, NO_ID)];
    entries.extend(named.map(|bits| (NAMED_USER, bits, USER)));
    entries.extend([
        (GROUP_OBJ, group, NO_ID),
        (MASK, group, NO_ID),
        (EVERYONE, 0, NO_ID),
    ]);
    let mut value = VERSION.to_le_bytes().to_vec();
    for (tag, bits, id) in entries {
        value.extend(tag.to_le_bytes());
        value.extend(bits.to_le_bytes());
        value.extend(id.to_le_bytes());
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: both strings are NUL-terminated and `value` is readable for its length, for the
    // duration of the call.
    let r = unsafe {
        libc::setxattr(
            c_path.as_ptr(),
            c"system.posix_acl_access".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(r, 0, "setxattr: {}", std::io::Error::last_os_error());
}
