//! The local backend against a real ext4 directory. Runs as root (handles need CAP_DAC_READ_SEARCH);
//! every test works in its own tempdir and switches identity on its own thread only.

// Test code: panicking on an unexpected error is the point (helpers are not `#[test]` functions,
// so clippy's allow-unwrap-in-tests does not cover them).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::Checked;
use rnfs_storage::handle::{self, HandleKey};
use rnfs_storage::local::LocalFs;
use rnfs_storage::{access, DirEntry, Error, FileHandle, FileType, Identity};

const NOBODY: u32 = 65534;

fn nobody() -> Identity {
    Identity {
        uid: NOBODY,
        gid: NOBODY,
        groups: vec![],
    }
}

fn root() -> Identity {
    Identity::root()
}

/// A tempdir export, world-searchable so non-root identities can be tested.
fn setup() -> (tempfile::TempDir, LocalFs, HandleKey) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let key = HandleKey::random().unwrap();
    let fs = LocalFs::new(1, dir.path(), key.clone()).unwrap();
    (dir, fs, key)
}

fn write(path: &Path, data: &[u8], mode: u32) {
    fs::write(path, data).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn lookup(fs: &LocalFs, dir: &FileHandle, name: &str) -> FileHandle {
    fs.lookup(&root(), dir, name.as_bytes()).unwrap().0
}

/// Lists a directory with a sink that takes at most `budget` entries per call, resuming from the
/// last cookie each time, as a client would.
fn list(
    fs: &LocalFs,
    who: &Identity,
    dir: &FileHandle,
    plus: bool,
    budget: usize,
) -> Vec<DirEntry> {
    let mut out = Vec::new();
    let mut cookie = 0;
    let mut verifier = [0u8; 8];
    loop {
        let mut taken = 0;
        let listing = fs
            .readdir(who, dir, cookie, verifier, plus, &mut |e| {
                if taken == budget {
                    return false;
                }
                taken += 1;
                cookie = e.cookie;
                out.push(e);
                true
            })
            .unwrap();
        verifier = listing.verifier;
        if listing.eof {
            return out;
        }
        assert!(taken > 0, "no progress");
    }
}

#[test]
fn handle_round_trip_and_getattr() {
    let (dir, fs, _) = setup();
    write(&dir.path().join("f"), b"hello", 0o644);
    let fh = lookup(&fs, &fs.root(), "f");
    assert!(fh.as_bytes().len() <= 64);
    assert_eq!(handle::export_id(fh.as_bytes()), Some(1));
    let a = fs.getattr(&nobody(), &fh).unwrap();
    let m = fs::metadata(dir.path().join("f")).unwrap();
    assert_eq!(a.file_type, FileType::Regular);
    assert_eq!(
        (a.fileid, a.size_bytes, a.mode, a.nlink),
        (m.ino(), 5, 0o644, 1)
    );
    assert_eq!(a.fsid, m.dev());
    assert_eq!(a.mtime.seconds as i64, m.mtime());
    assert_eq!(a.used_bytes, m.blocks() * 512);
    // The same object always gets the same handle.
    assert_eq!(lookup(&fs, &fs.root(), "f"), fh);
    let r = fs.getattr(&root(), &fs.root()).unwrap();
    assert_eq!(
        (r.file_type, r.fileid),
        (FileType::Directory, fs::metadata(dir.path()).unwrap().ino())
    );
}

#[test]
fn forged_or_foreign_handles_are_bad() {
    let (dir, fs, key) = setup();
    write(&dir.path().join("f"), b"x", 0o644);
    let fh = lookup(&fs, &fs.root(), "f");
    for i in 0..fh.as_bytes().len() {
        let mut raw = fh.as_bytes().to_vec();
        raw[i] ^= 0x40;
        assert_eq!(
            fs.getattr(&root(), &FileHandle::from_wire(raw.into())),
            Err(Error::BadHandle),
            "byte {i}"
        );
    }
    assert_eq!(
        fs.getattr(&root(), &FileHandle::from_wire(fh.to_bytes().slice(..10))),
        Err(Error::BadHandle)
    );
    assert_eq!(
        fs.getattr(&root(), &FileHandle::from_wire(Default::default())),
        Err(Error::BadHandle)
    );
    // Same directory and key, another export id: the handle does not belong there.
    let other = LocalFs::new(2, dir.path(), key).unwrap();
    assert_eq!(other.getattr(&root(), &fh), Err(Error::BadHandle));
    // Another key (a different server): bad too.
    let stranger = LocalFs::new(1, dir.path(), HandleKey::random().unwrap()).unwrap();
    assert_eq!(stranger.getattr(&root(), &fh), Err(Error::BadHandle));
}

#[test]
fn removed_file_is_stale() {
    let (dir, fs, _) = setup();
    write(&dir.path().join("f"), b"x", 0o644);
    fs::create_dir(dir.path().join("d")).unwrap();
    let f = lookup(&fs, &fs.root(), "f");
    let d = lookup(&fs, &fs.root(), "d");
    fs::remove_file(dir.path().join("f")).unwrap();
    fs::remove_dir(dir.path().join("d")).unwrap();
    assert_eq!(fs.getattr(&root(), &f), Err(Error::Stale));
    assert_eq!(fs.read(&root(), &f, 0, 1).unwrap_err(), Error::Stale);
    assert_eq!(fs.lookup(&root(), &d, b"x").unwrap_err(), Error::Stale);
    // A new file under the old name is a different object.
    write(&dir.path().join("f"), b"y", 0o644);
    assert_ne!(lookup(&fs, &fs.root(), "f"), f);
    assert_eq!(fs.getattr(&root(), &f), Err(Error::Stale));
}

#[test]
fn handles_survive_restart_with_persisted_key() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let export = dir.path().join("export");
    fs::create_dir(&export).unwrap();
    write(&export.join("f"), b"x", 0o644);
    let fh = {
        let fs = LocalFs::new(7, &export, HandleKey::load_or_create(&state).unwrap()).unwrap();
        lookup(&fs, &fs.root(), "f")
    };
    let fs = LocalFs::new(7, &export, HandleKey::load_or_create(&state).unwrap()).unwrap();
    assert_eq!(
        fs.getattr(&root(), &fh).unwrap().fileid,
        fs::metadata(export.join("f")).unwrap().ino()
    );
    assert_eq!(fs.read(&root(), &fh, 0, 10).unwrap().data.as_ref(), b"x");
}

#[test]
fn dot_and_dotdot_never_escape() {
    let (dir, fs, _) = setup();
    fs::create_dir_all(dir.path().join("a/b")).unwrap();
    let root_fh = fs.root();
    let root_ino = fs::metadata(dir.path()).unwrap().ino();
    let (fh, attr) = fs.lookup(&root(), &root_fh, b".").unwrap();
    assert_eq!((fh, attr.fileid), (root_fh.clone(), root_ino));
    let (fh, attr) = fs.lookup(&nobody(), &root_fh, b"..").unwrap();
    assert_eq!((fh, attr.fileid), (root_fh.clone(), root_ino));
    let a = lookup(&fs, &root_fh, "a");
    let b = lookup(&fs, &a, "b");
    assert_eq!(lookup(&fs, &b, ".."), a);
    assert_eq!(lookup(&fs, &a, ".."), root_fh);
    // Climbing further stays at the root.
    let mut fh = b;
    for _ in 0..5 {
        fh = lookup(&fs, &fh, "..");
    }
    assert_eq!(fh, root_fh);
    assert_eq!(
        lookup(&fs, &lookup(&fs, &root_fh, "a"), "."),
        lookup(&fs, &root_fh, "a")
    );
}

#[test]
fn bad_names_refused() {
    let (dir, fs, _) = setup();
    fs::create_dir(dir.path().join("a")).unwrap();
    write(&dir.path().join("a/f"), b"", 0o644);
    let r = fs.root();
    assert_eq!(fs.lookup(&root(), &r, b"a/f").unwrap_err(), Error::Access);
    assert_eq!(fs.lookup(&root(), &r, b"/etc").unwrap_err(), Error::Access);
    assert_eq!(fs.lookup(&root(), &r, b"../..").unwrap_err(), Error::Access);
    assert_eq!(fs.lookup(&root(), &r, b"a\0").unwrap_err(), Error::Access);
    assert_eq!(fs.lookup(&root(), &r, b"").unwrap_err(), Error::Access);
    assert_eq!(
        fs.lookup(&root(), &r, &[b'x'; 256]).unwrap_err(),
        Error::NameTooLong
    );
    assert_eq!(
        fs.lookup(&root(), &r, &[b'x'; 255]).unwrap_err(),
        Error::NoEnt
    );
    assert_eq!(
        fs.lookup(&root(), &r, b"missing").unwrap_err(),
        Error::NoEnt
    );
    let f = lookup(&fs, &lookup(&fs, &r, "a"), "f");
    assert_eq!(fs.lookup(&root(), &f, b"x").unwrap_err(), Error::NotDir);
    assert_eq!(
        fs.readdir(&root(), &f, 0, [0; 8], false, &mut |_| true)
            .unwrap_err(),
        Error::NotDir
    );
}

#[test]
fn symlinks_are_not_followed() {
    let (dir, fs, _) = setup();
    std::os::unix::fs::symlink("/etc/passwd", dir.path().join("l")).unwrap();
    std::os::unix::fs::symlink("/", dir.path().join("up")).unwrap();
    let r = fs.root();
    let (l, attr) = fs.lookup(&root(), &r, b"l").unwrap();
    assert_eq!(attr.file_type, FileType::Symlink);
    let (target, _) = fs.readlink(&nobody(), &l).unwrap();
    assert_eq!(target.as_ref(), b"/etc/passwd");
    // Reading or listing through a symlink does not reach its target.
    assert_eq!(fs.read(&root(), &l, 0, 10).unwrap_err(), Error::Inval);
    let up = lookup(&fs, &r, "up");
    assert_eq!(fs.lookup(&root(), &up, b"etc").unwrap_err(), Error::NotDir);
    // READLINK of something else is INVAL.
    assert_eq!(fs.readlink(&root(), &r).unwrap_err(), Error::Inval);
}

#[test]
fn permissions_are_the_callers() {
    let (dir, fs, _) = setup();
    write(&dir.path().join("secret"), b"top secret", 0o600);
    write(&dir.path().join("public"), b"hello", 0o644);
    write(&dir.path().join("group"), b"members", 0o640);
    std::os::unix::fs::chown(dir.path().join("group"), Some(0), Some(4242)).unwrap();
    fs::create_dir(dir.path().join("private")).unwrap();
    fs::set_permissions(
        dir.path().join("private"),
        fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    write(&dir.path().join("private/inner"), b"x", 0o644);
    let r = fs.root();
    let secret = lookup(&fs, &r, "secret");
    let public = lookup(&fs, &r, "public");
    let group = lookup(&fs, &r, "group");
    let private = lookup(&fs, &r, "private");

    let (granted, attr) = fs.access(&nobody(), &secret, access::ALL).unwrap();
    assert_eq!(
        granted & (access::READ | access::MODIFY | access::EXTEND | access::EXECUTE),
        0
    );
    assert_eq!(attr.mode, 0o600);
    assert_eq!(
        fs.read(&nobody(), &secret, 0, 100).unwrap_err(),
        Error::Access
    );
    // Root (unsquashed) reads it.
    assert_eq!(
        fs.read(&root(), &secret, 0, 100).unwrap().data.as_ref(),
        b"top secret"
    );
    let (granted, _) = fs.access(&root(), &secret, access::ALL).unwrap();
    assert_eq!(granted, access::READ | access::MODIFY | access::EXTEND);

    let (granted, _) = fs.access(&nobody(), &public, access::ALL).unwrap();
    assert_eq!(granted, access::READ);
    assert_eq!(
        fs.read(&nobody(), &public, 0, 100).unwrap().data.as_ref(),
        b"hello"
    );

    // Supplementary groups count.
    let member = Identity {
        uid: 1000,
        gid: 1000,
        groups: vec![4242],
    };
    assert_eq!(
        fs.access(&member, &group, access::READ).unwrap().0,
        access::READ
    );
    assert_eq!(
        fs.read(&member, &group, 0, 100).unwrap().data.as_ref(),
        b"members"
    );
    assert_eq!(
        fs.read(&nobody(), &group, 0, 100).unwrap_err(),
        Error::Access
    );

    // Directory bits: the root tempdir is 0755 root-owned.
    let (granted, _) = fs.access(&nobody(), &r, access::ALL).unwrap();
    assert_eq!(granted, access::READ | access::LOOKUP);
    let (granted, _) = fs.access(&root(), &r, access::ALL).unwrap();
    assert_eq!(
        granted,
        access::READ | access::LOOKUP | access::MODIFY | access::EXTEND | access::DELETE
    );
    // A 0700 directory cannot be searched or listed by others, even with a valid handle.
    assert_eq!(fs.access(&nobody(), &private, access::ALL).unwrap().0, 0);
    assert_eq!(
        fs.lookup(&nobody(), &private, b"inner").unwrap_err(),
        Error::Access
    );
    assert_eq!(
        fs.lookup(&nobody(), &private, b".").unwrap_err(),
        Error::Access
    );
    assert_eq!(
        fs.readdir(&nobody(), &private, 0, [0; 8], false, &mut |_| true)
            .unwrap_err(),
        Error::Access
    );
    // Metadata needs no permission on the object.
    assert_eq!(fs.getattr(&nobody(), &private).unwrap().mode, 0o700);
    // The thread is root again afterwards.
    assert!(!rnfs_sys::identity::is_switched());
    assert_eq!(
        fs.read(&root(), &secret, 0, 3).unwrap().data.as_ref(),
        b"top"
    );
}

#[test]
fn read_eof_is_exact() {
    let (dir, fs, _) = setup();
    write(&dir.path().join("f"), b"0123456789", 0o644);
    write(&dir.path().join("empty"), b"", 0o644);
    fs::create_dir(dir.path().join("d")).unwrap();
    let r = fs.root();
    let f = lookup(&fs, &r, "f");
    let read = |off, count| {
        let d = fs.read(&root(), &f, off, count).unwrap();
        (String::from_utf8(d.data.to_vec()).unwrap(), d.eof)
    };
    assert_eq!(read(0, 4), ("0123".into(), false));
    assert_eq!(read(6, 4), ("6789".into(), true)); // ends exactly at EOF
    assert_eq!(read(6, 100), ("6789".into(), true)); // short read at the end
    assert_eq!(read(0, 10), ("0123456789".into(), true));
    assert_eq!(read(0, 9), ("012345678".into(), false));
    assert_eq!(read(10, 5), ("".into(), true)); // at EOF
    assert_eq!(read(1000, 5), ("".into(), true)); // past EOF
    assert_eq!(read(u64::MAX, 5), ("".into(), true));
    assert_eq!(read(3, 0), ("".into(), false));
    let d = fs.read(&root(), &f, 0, 4).unwrap();
    assert_eq!(d.attr.size_bytes, 10);
    let e = lookup(&fs, &r, "empty");
    assert!(fs.read(&root(), &e, 0, 100).unwrap().eof);
    assert_eq!(
        fs.read(&root(), &lookup(&fs, &r, "d"), 0, 1).unwrap_err(),
        Error::IsDir
    );

    // A large read returns everything.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(dir.path().join("big"), &big).unwrap();
    let b = lookup(&fs, &r, "big");
    let mut got = Vec::new();
    loop {
        let d = fs.read(&root(), &b, got.len() as u64, 1 << 20).unwrap();
        got.extend_from_slice(&d.data);
        if d.eof {
            break;
        }
    }
    assert_eq!(got, big);
}

#[test]
fn readdir_large_directory_resumes_exactly() {
    let (dir, fs, _) = setup();
    fs::create_dir(dir.path().join("big")).unwrap();
    let mut want: HashSet<Vec<u8>> = HashSet::new();
    for i in 0..10_000 {
        let name = format!("entry-{i:05}-{}", "x".repeat(i % 40));
        fs::write(dir.path().join("big").join(&name), b"").unwrap();
        want.insert(name.into_bytes());
    }
    let big = lookup(&fs, &fs.root(), "big");
    for budget in [1, 7, 1000] {
        let entries = list(&fs, &root(), &big, false, budget);
        let names: Vec<Vec<u8>> = entries.iter().map(|e| e.name.to_vec()).collect();
        let unique: HashSet<Vec<u8>> = names.iter().cloned().collect();
        assert_eq!(unique.len(), names.len(), "duplicates with budget {budget}");
        let mut expected = want.clone();
        expected.insert(b".".to_vec());
        expected.insert(b"..".to_vec());
        assert_eq!(unique, expected, "budget {budget}");
        assert!(entries
            .iter()
            .all(|e| e.attr.is_none() && e.handle.is_none()));
        // The listing agrees with the local one (which omits . and ..).
        let local: HashSet<Vec<u8>> = fs::read_dir(dir.path().join("big"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_encoded_bytes())
            .collect();
        assert_eq!(local, want);
        for e in &entries {
            if e.name.as_ref() != b"." && e.name.as_ref() != b".." {
                let ino = fs::symlink_metadata(
                    dir.path()
                        .join("big")
                        .join(std::str::from_utf8(&e.name).unwrap()),
                )
                .unwrap()
                .ino();
                assert_eq!(e.fileid, ino);
            }
        }
    }
}

#[test]
fn readdir_root_dotdot_is_the_root() {
    let (dir, fs, _) = setup();
    fs::create_dir(dir.path().join("sub")).unwrap();
    let root_ino = fs::metadata(dir.path()).unwrap().ino();
    let entries = list(&fs, &nobody(), &fs.root(), true, 2);
    let dotdot = entries.iter().find(|e| e.name.as_ref() == b"..").unwrap();
    assert_eq!(dotdot.fileid, root_ino);
    assert_eq!(dotdot.attr.as_ref().unwrap().fileid, root_ino);
    assert_eq!(dotdot.handle.as_ref().unwrap(), &fs.root());
    let dot = entries.iter().find(|e| e.name.as_ref() == b".").unwrap();
    assert_eq!(
        (dot.fileid, dot.handle.as_ref().unwrap()),
        (root_ino, &fs.root())
    );
    // In a subdirectory, .. is the real parent (the root).
    let sub = lookup(&fs, &fs.root(), "sub");
    let entries = list(&fs, &root(), &sub, true, 100);
    let dotdot = entries.iter().find(|e| e.name.as_ref() == b"..").unwrap();
    assert_eq!(
        (dotdot.fileid, dotdot.handle.as_ref().unwrap()),
        (root_ino, &fs.root())
    );
}

#[test]
fn readdirplus_attrs_and_handles_resolve() {
    let (dir, fs, _) = setup();
    for i in 0..50 {
        write(&dir.path().join(format!("f{i}")), &vec![b'a'; i], 0o644);
    }
    fs::create_dir(dir.path().join("d")).unwrap();
    std::os::unix::fs::symlink("f1", dir.path().join("link")).unwrap();
    let entries = list(&fs, &nobody(), &fs.root(), true, 5);
    assert_eq!(entries.len(), 50 + 2 + 2); // files, d, link, . and ..
    for e in &entries {
        let attr = e.attr.as_ref().unwrap();
        let fh = e.handle.as_ref().unwrap();
        assert_eq!(&fs.getattr(&root(), fh).unwrap(), attr, "{:?}", e.name);
        assert_eq!(attr.fileid, e.fileid);
        let name = std::str::from_utf8(&e.name).unwrap();
        if name != "." && name != ".." {
            assert_eq!(&lookup(&fs, &fs.root(), name), fh);
            let m = fs::symlink_metadata(dir.path().join(name)).unwrap();
            assert_eq!(attr.size_bytes, m.len());
        }
        if name == "link" {
            assert_eq!(attr.file_type, FileType::Symlink);
        }
    }
    // Without search permission, entries come without extras.
    let private = dir.path().join("d");
    write(&private.join("inner"), b"", 0o644);
    fs::set_permissions(&private, fs::Permissions::from_mode(0o744)).unwrap();
    let d = lookup(&fs, &fs.root(), "d");
    let entries = list(&fs, &nobody(), &d, true, 100);
    let inner = entries
        .iter()
        .find(|e| e.name.as_ref() == b"inner")
        .unwrap();
    assert!(inner.attr.is_none() && inner.handle.is_none());
}

#[test]
fn sink_refusal_does_not_consume_the_entry() {
    let (dir, fs, _) = setup();
    for i in 0..20 {
        fs::write(dir.path().join(format!("n{i}")), b"").unwrap();
    }
    let mut seen = Vec::new();
    let mut cookie = 0;
    let mut refused = None;
    let listing = fs
        .readdir(&root(), &fs.root(), 0, [0; 8], false, &mut |e| {
            if seen.len() == 3 {
                refused = Some(e.name.clone());
                return false;
            }
            cookie = e.cookie;
            seen.push(e.name.clone());
            true
        })
        .unwrap();
    assert!(!listing.eof);
    let mut next = None;
    fs.readdir(
        &root(),
        &fs.root(),
        cookie,
        listing.verifier,
        false,
        &mut |e| {
            next = Some(e.name.clone());
            false
        },
    )
    .unwrap();
    assert_eq!(next, refused);
    // A cookie the directory cannot seek to is BAD_COOKIE.
    assert_eq!(
        fs.readdir(&root(), &fs.root(), u64::MAX, [0; 8], false, &mut |_| true)
            .unwrap_err(),
        Error::BadCookie
    );
    // An old verifier is not refused (see the module documentation).
    fs::write(dir.path().join("late"), b"").unwrap();
    assert!(
        fs.readdir(&root(), &fs.root(), cookie, [9; 8], false, &mut |_| true)
            .unwrap()
            .eof
    );
}

#[test]
fn fsstat_and_pathconf() {
    let (_dir, fs, _) = setup();
    let (st, attr) = fs.fsstat(&nobody(), &fs.root()).unwrap();
    assert!(
        st.total_bytes > 0 && st.total_bytes >= st.free_bytes && st.free_bytes >= st.avail_bytes
    );
    assert!(st.total_files >= st.free_files);
    assert_eq!(attr.file_type, FileType::Directory);
    let (pc, _) = fs.pathconf(&nobody(), &fs.root()).unwrap();
    assert_eq!(pc.name_max, 255);
    assert!(pc.link_max >= 1);
    assert!(pc.no_trunc && pc.chown_restricted && pc.case_preserving && !pc.case_insensitive);
}

#[test]
fn new_refuses_non_directories() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("f"), b"", 0o644);
    assert!(LocalFs::new(1, &dir.path().join("f"), HandleKey::random().unwrap()).is_err());
    assert!(LocalFs::new(1, &dir.path().join("missing"), HandleKey::random().unwrap()).is_err());
}

#[test]
fn concurrent_identities_do_not_leak() {
    // Many threads alternating root and nobody on the same backend: each sees its own identity.
    let (dir, fs, _) = setup();
    write(&dir.path().join("secret"), b"s", 0o600);
    let fs = std::sync::Arc::new(fs);
    let secret = lookup(&fs, &fs.root(), "secret");
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (fs, secret) = (fs.clone(), secret.clone());
            std::thread::spawn(move || {
                for i in 0..200 {
                    if (t + i) % 2 == 0 {
                        assert_eq!(fs.read(&root(), &secret, 0, 1).unwrap().data.as_ref(), b"s");
                    } else {
                        assert_eq!(
                            fs.read(&nobody(), &secret, 0, 1).unwrap_err(),
                            Error::Access
                        );
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Runs itself again in a private mount namespace (`unshare`), where it may mount freely; the
/// tempdir is made and removed out here, where the mounts are invisible.
#[test]
fn mount_points_are_not_crossed() {
    common::in_mount_namespace(
        "mount_points_are_not_crossed",
        "RNFS_TEST_MOUNT_DIR",
        mount_points_inner,
    );
}

fn mount_points_inner(dir: &Path) {
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| {
        assert!(std::process::Command::new("mount")
            .args(args)
            .status()
            .unwrap()
            .success());
    };
    fs::create_dir(dir.join("tmpfs")).unwrap();
    run(&["-t", "tmpfs", "none", dir.join("tmpfs").to_str().unwrap()]);
    fs::write(dir.join("tmpfs/inside"), b"x").unwrap();
    // A bind mount of the same file system: same device, another mount.
    fs::create_dir_all(dir.join("real/sub")).unwrap();
    fs::create_dir(dir.join("bind")).unwrap();
    run(&[
        "--bind",
        dir.join("real").to_str().unwrap(),
        dir.join("bind").to_str().unwrap(),
    ]);

    let fs = LocalFs::new(1, dir, HandleKey::random().unwrap()).unwrap();
    let r = fs.root();
    assert_eq!(fs.lookup(&root(), &r, b"tmpfs").unwrap_err(), Error::Access);
    assert_eq!(fs.lookup(&root(), &r, b"bind").unwrap_err(), Error::Access);
    let real = lookup(&fs, &r, "real");
    assert!(fs.lookup(&root(), &real, b"sub").is_ok());
    let entries = list(&fs, &root(), &r, true, 100);
    check_mount_points(&entries);
    assert_eq!(fs.remembered_listings().listings, 0);
    // A listing remembered before a mount appeared on one of its names: that entry must not
    // be served from memory (fstatat finds another object), and the listing is dropped.
    // (The root's listing is not remembered: it holds entries without handles.)
    fs::create_dir_all(dir.join("plain/later")).unwrap();
    settle();
    let plain = lookup(&fs, &r, "plain");
    list(&fs, &root(), &plain, true, 100);
    assert_eq!(fs.remembered_listings().listings, 1);
    run(&[
        "-t",
        "tmpfs",
        "none",
        dir.join("plain/later").to_str().unwrap(),
    ]);
    let entries = list(&fs, &root(), &plain, true, 100);
    let later = entries
        .iter()
        .find(|e| e.name.as_ref() == b"later")
        .unwrap();
    assert!(later.attr.is_none() && later.handle.is_none());
    assert_eq!(fs.remembered_listings().listings, 0);
}

fn check_mount_points(entries: &[DirEntry]) {
    for name in [&b"tmpfs"[..], b"bind"] {
        let e = entries.iter().find(|e| e.name.as_ref() == name).unwrap();
        assert!(e.attr.is_none() && e.handle.is_none(), "{name:?}");
    }
    assert!(entries
        .iter()
        .find(|e| e.name.as_ref() == b"real")
        .unwrap()
        .handle
        .is_some());
}

/// Makes `parent/name` holding `count` empty files named by `file_name`; returns its path.
fn dir_of_files(
    parent: &Path,
    name: &str,
    count: usize,
    file_name: impl Fn(usize) -> String,
) -> std::path::PathBuf {
    let d = parent.join(name);
    fs::create_dir(&d).unwrap();
    for i in 0..count {
        write(&d.join(file_name(i)), b"", 0o644);
    }
    d
}

/// Waits until directories changed before the call have been unchanged long enough for their
/// listings to be remembered (see `rnfs_storage::local::listing`).
fn settle() {
    let ms = rnfs_storage::local::listing::SETTLE_MS;
    std::thread::sleep(std::time::Duration::from_millis(ms + 50));
}

/// An entry as a client sees it, but for the access time (which reading a file moves).
type Seen = (
    Vec<u8>,
    u64,
    u64,
    Option<FileHandle>,
    Option<rnfs_storage::Attr>,
);

fn seen(e: &DirEntry) -> Seen {
    let attr = e.attr.clone().map(|a| rnfs_storage::Attr {
        atime: a.mtime,
        ..a
    });
    (e.name.to_vec(), e.fileid, e.cookie, e.handle.clone(), attr)
}

#[test]
fn remembered_listings_match_the_directory_and_follow_its_changes() {
    let (dir, fs, _) = setup();
    let big = dir_of_files(dir.path(), "big", 3_000, |i| format!("file-{i:05}"));
    fs::create_dir(big.join("sub")).unwrap();
    let h = lookup(&fs, &fs.root(), "big");
    // Changed a moment ago: listed, but not remembered.
    let fresh = list(&fs, &root(), &h, true, 200);
    assert_eq!(fs.remembered_listings().listings, 0);
    settle();
    let first = list(&fs, &root(), &h, true, 200);
    assert_eq!(first.len(), 3_000 + 3);
    let held = fs.remembered_listings();
    assert_eq!((held.listings, held.entries), (1, 3_003));
    assert_eq!(held.calls_served, 0);
    let want: Vec<_> = first.iter().map(seen).collect();
    assert_eq!(fresh.iter().map(seen).collect::<Vec<_>>(), want);

    // From memory, in any reply size, exactly as read from the directory.
    for budget in [1, 7, 200, 5_000] {
        let again = list(&fs, &root(), &h, true, budget);
        assert_eq!(again.iter().map(seen).collect::<Vec<_>>(), want, "{budget}");
        let plain = list(&fs, &root(), &h, false, budget);
        let names = |v: &[DirEntry]| {
            v.iter()
                .map(|e| (e.name.to_vec(), e.fileid, e.cookie))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&plain), names(&first));
        assert!(plain.iter().all(|e| e.attr.is_none() && e.handle.is_none()));
    }
    let served = fs.remembered_listings().calls_served;
    assert!(served > 3_003 * 2, "served {served} calls from memory");

    // Attributes are never remembered: a chmod (the directory unchanged) shows at once.
    fs::set_permissions(big.join("file-00042"), fs::Permissions::from_mode(0o600)).unwrap();
    let again = list(&fs, &root(), &h, true, 200);
    let e = again
        .iter()
        .find(|e| e.name.as_ref() == b"file-00042")
        .unwrap();
    assert_eq!(e.attr.as_ref().unwrap().mode, 0o600);
    assert_eq!(fs.remembered_listings().listings, 1);

    // A new name changes the directory: listed at once, remembered again once settled.
    fs::remove_file(big.join("file-00007")).unwrap();
    write(&big.join("new-one"), b"x", 0o644);
    let changed = list(&fs, &root(), &h, true, 200);
    let names: HashSet<Vec<u8>> = changed.iter().map(|e| e.name.to_vec()).collect();
    assert!(names.contains(&b"new-one"[..]) && !names.contains(&b"file-00007"[..]));
    assert_eq!(names.len(), 3_003);
    assert_eq!(fs.remembered_listings().listings, 0);
    settle();
    list(&fs, &root(), &h, true, 200);
    let after = list(&fs, &root(), &h, true, 200);
    assert_eq!(
        after.iter().map(seen).collect::<Vec<_>>(),
        changed.iter().map(seen).collect::<Vec<_>>()
    );
    assert_eq!(fs.remembered_listings().listings, 1);
}

#[test]
fn first_pages_read_again_are_answered_from_a_remembered_prefix() {
    let (dir, fs, key) = setup();
    let big = dir_of_files(dir.path(), "big", 1_000, |i| format!("file-{i:04}"));
    settle();
    let h = lookup(&fs, &fs.root(), "big");
    let whole = list(&fs, &root(), &h, true, 5_000);
    let want: Vec<_> = whole.iter().map(seen).collect();
    // A fresh server: clients read only the first 100 entries (`ls | head`), again and again.
    let fs = LocalFs::new(1, dir.path(), key).unwrap();
    let first_page = |fs: &LocalFs| {
        let mut out = Vec::new();
        fs.readdir(&root(), &h, 0, [0; 8], true, &mut |e| {
            if out.len() == 100 {
                return false;
            }
            out.push(e);
            true
        })
        .unwrap();
        out.iter().map(seen).collect::<Vec<_>>()
    };
    assert_eq!(first_page(&fs), want[..100]);
    assert_eq!(first_page(&fs), want[..100]);
    let held = fs.remembered_listings();
    assert_eq!(
        (held.listings, held.entries),
        (1, 100),
        "the first pass, given up"
    );
    assert_eq!(first_page(&fs), want[..100]);
    assert_eq!(fs.remembered_listings().calls_served, 1);
    // A whole listing in larger replies: the first one runs past the prefix and on into the
    // directory, the rest read the directory; the pass completes the listing.
    let again = list(&fs, &root(), &h, true, 300);
    assert_eq!(again.iter().map(seen).collect::<Vec<_>>(), want);
    let held = fs.remembered_listings();
    assert_eq!((held.listings, held.entries), (1, 1_002));
    let served = held.calls_served;
    let again = list(&fs, &root(), &h, true, 300);
    assert_eq!(again.iter().map(seen).collect::<Vec<_>>(), want);
    assert_eq!(
        fs.remembered_listings().calls_served,
        served + 4,
        "all from memory"
    );
    // A prefix goes stale with its directory like any listing.
    first_page(&fs);
    write(&big.join("file-0000"), b"x", 0o644);
    fs::remove_file(big.join("file-0001")).unwrap();
    let page = first_page(&fs);
    assert!(!page.iter().any(|e| e.0 == b"file-0001"));
}

#[test]
fn remembered_listings_keep_each_callers_permissions() {
    let (dir, fs, _) = setup();
    let d = dir_of_files(dir.path(), "d", 100, |i| format!("f{i}"));
    settle();
    let h = lookup(&fs, &fs.root(), "d");
    list(&fs, &root(), &h, true, 30);
    assert_eq!(fs.remembered_listings().listings, 1);
    // Read but no search permission: names, but no attributes or handles, as from the directory.
    fs::set_permissions(&d, fs::Permissions::from_mode(0o744)).unwrap();
    settle();
    list(&fs, &root(), &h, true, 30);
    let served = fs.remembered_listings().calls_served;
    let entries = list(&fs, &nobody(), &h, true, 30);
    assert!(
        fs.remembered_listings().calls_served > served,
        "from memory"
    );
    assert_eq!(entries.len(), 102);
    for e in entries.iter().filter(|e| e.name.starts_with(b"f")) {
        assert!(e.attr.is_none() && e.handle.is_none(), "{:?}", e.name);
    }
    // No read permission: refused, remembered listing or not.
    fs::set_permissions(&d, fs::Permissions::from_mode(0o700)).unwrap();
    settle();
    list(&fs, &root(), &h, true, 30);
    assert_eq!(
        fs.readdir(&nobody(), &h, 0, [0; 8], true, &mut |_| true)
            .unwrap_err(),
        Error::Access
    );
    // A pass by a caller who could not see everything is not remembered for others.
    fs::set_permissions(&d, fs::Permissions::from_mode(0o744)).unwrap();
    settle();
    list(&fs, &nobody(), &h, true, 30);
    assert_eq!(fs.remembered_listings().listings, 0);
}

/// NFS lock owners' descriptions ([`rnfs_storage::Backend::open_lock_file`]) hold OFD locks that
/// conflict with each other and with a local process's locks, and release them when dropped.
#[test]
fn lock_files_mirror_locks_into_the_file_system() {
    use rnfs_storage::Backend;
    use rnfs_sys::ofd::{self, LockKind, Outcome};
    use std::os::fd::AsFd;
    let (dir, fs, _) = setup();
    write(&dir.path().join("f"), b"data", 0o600);
    let vh = fs.verify(&lookup(&fs, &Backend::root(&fs), "f")).unwrap();
    let a = Backend::open_lock_file(&fs, &vh).unwrap().unwrap();
    let b = Backend::open_lock_file(&fs, &vh).unwrap().unwrap();
    assert!(a.lock(true, 0, 10).unwrap());
    assert!(
        !b.lock(false, 5, 1).unwrap(),
        "owners' descriptions conflict"
    );
    assert!(b.lock(false, 10, 0).unwrap(), "adjacent, to end of file");
    let local = fs::File::open(dir.path().join("f")).unwrap();
    assert!(matches!(
        ofd::lock(local.as_fd(), LockKind::Shared, 9, 1).unwrap(),
        Outcome::Denied
    ));
    a.unlock(0, 5).unwrap();
    assert!(matches!(
        ofd::lock(local.as_fd(), LockKind::Shared, 0, 5).unwrap(),
        Outcome::Granted
    ));
    drop(a);
    assert!(matches!(
        ofd::lock(local.as_fd(), LockKind::Shared, 5, 5).unwrap(),
        Outcome::Granted
    ));
    // The local shared lock now keeps an NFS owner's exclusive lock out, and vice versa.
    assert!(!b.lock(true, 3, 1).unwrap());
    let root = fs.verify(&Backend::root(&fs)).unwrap();
    assert!(matches!(
        Backend::open_lock_file(&fs, &root),
        Err(Error::IsDir)
    ));
}
