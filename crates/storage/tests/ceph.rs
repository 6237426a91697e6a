//! The CephFS backend against a cluster this test starts (scripts/ceph-cluster) and stops:
//! two backends on one file system act as two rnfsd heads.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_storage::ceph::{CephConfig, CephFs};
use rnfs_storage::handle::HandleKey;
use rnfs_storage::{
    Backend, CreateMode, Error, Identity, NodeKind, SeekWhat, SetAttrs, Stability, XattrSet,
};

fn head(cluster: &TestCluster, key: &HandleKey, path: &str) -> CephFs {
    let cfg = CephConfig {
        conf: cluster.conf().to_owned(),
        client_id: "admin".into(),
        fs_name: Some("cephfs".into()),
        path: path.into(),
        uuid: None,
    };
    CephFs::new(7, &cfg, key).unwrap()
}

#[test]
fn two_heads_serve_one_file_system() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    eprintln!("cluster up in {:?}", cluster.started_in);
    let key = HandleKey::random().unwrap();
    let t0 = Instant::now();
    let a = head(&cluster, &key, "/");
    let root = Identity::root();
    let r = a.handle_key().verify(7, &a.root()).unwrap();
    let exp = a
        .mkdir(
            &root,
            &r,
            b"export",
            &SetAttrs {
                mode: Some(0o777),
                ..Default::default()
            },
        )
        .unwrap();
    drop(exp);
    let a = head(&cluster, &key, "/export");
    let b = head(&cluster, &key, "/export");
    assert_eq!(a.root(), b.root(), "both heads give the same root handle");
    let ra = a.handle_key().verify(7, &a.root()).unwrap();
    let user = Identity {
        uid: 1000,
        gid: 1000,
        groups: vec![],
    };

    // Head A: create and write UNSTABLE, then COMMIT.
    let c = a
        .create(&user, &ra, b"f", &CreateMode::Guarded(SetAttrs::default()))
        .unwrap();
    let fa = a.handle_key().verify(7, &c.handle).unwrap();
    let data = vec![0x5au8; 100_000];
    let w = a.write(&user, &fa, 0, &data, Stability::Unstable).unwrap();
    assert_eq!((w.count, w.committed), (100_000, Stability::Unstable));
    a.commit(&user, &fa, 0, 0).unwrap();
    let w = a
        .write(&user, &fa, 100_000, b"tail", Stability::FileSync)
        .unwrap();
    assert_eq!(w.committed, Stability::FileSync);

    // Head B: the same handle resolves, and reads what A wrote.
    let fb = b.handle_key().verify(7, &c.handle).unwrap();
    let rd = b.read(&user, &fb, 99_998, 100).unwrap();
    assert_eq!(&rd.data[..], b"\x5a\x5atail");
    assert!(rd.eof);
    let (h, attr) = b.lookup(&user, &ra, b"f").unwrap();
    assert_eq!(
        (h, attr.uid, attr.size_bytes),
        (c.handle.clone(), 1000, 100_004)
    );

    // Listing, permissions, and what is not supported yet.
    let mut names = Vec::new();
    b.readdir(&user, &ra, 0, [0; 8], true, &mut |e| {
        names.push(e.name.to_vec());
        true
    })
    .unwrap();
    assert!(names.contains(&b"f".to_vec()), "{names:?}");
    let other = Identity {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    let w = b.write(&other, &fb, 0, b"x", Stability::FileSync);
    assert_eq!(w.err(), Some(Error::Access));
    creating_as_the_local_backend_does(&a, &b, &user, &ra, &c.handle);
    b.remove(&user, &ra, b"f").unwrap();
    assert_eq!(a.getattr(&user, &fa).err(), Some(Error::Stale));
    // A third head, alone in its directories, so that its Ceph client holds their shared caps.
    let c = head(&cluster, &key, "/export");
    renaming_onto_a_linked_file_keeps_its_other_names(&c, &user);
    listing_in_pages_continues_the_same_stream(&c, &user);
    files_stay_open_between_a_callers_calls(&c, &user);
    nfs42_calls_as_the_caller(&a, &b, &user);
    read_delegations_hold_across_heads(&a, &b, &user);
    eprintln!("all checks in {:?}", t0.elapsed());
}

/// MKNOD, LINK, EXCLUSIVE CREATE, UNCHECKED over an existing file and the attributes of new
/// objects, checked across the two heads.
fn creating_as_the_local_backend_does(
    a: &CephFs,
    b: &CephFs,
    user: &Identity,
    ra: &rnfs_storage::VerifiedHandle,
    f: &rnfs_storage::FileHandle,
) {
    use rnfs_storage::{FileType, SetTime, Timestamp};
    let fa = a.handle_key().verify(7, f).unwrap();

    let p = b
        .mknod(user, ra, b"p", NodeKind::Fifo, &SetAttrs::default())
        .unwrap();
    assert_eq!((p.attr.file_type, p.attr.mode), (FileType::Fifo, 0o600));
    let d = a.mkdir(user, ra, b"d", &SetAttrs::default()).unwrap();
    assert_eq!(
        (d.attr.file_type, d.attr.mode),
        (FileType::Directory, 0o700)
    );
    let when = Timestamp {
        seconds: 1_000_000,
        nanoseconds: 0,
    };
    let l = a
        .symlink(
            user,
            ra,
            b"l",
            b"f",
            &SetAttrs {
                mtime: SetTime::ClientTime(when),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!((l.attr.file_type, l.attr.mtime), (FileType::Symlink, when));

    let (attr, wcc) = a.link(user, &fa, ra, b"f2").unwrap();
    assert_eq!(attr.unwrap().nlink, 2);
    assert!(wcc.after.is_some());
    assert_eq!(
        b.lookup(user, ra, b"f2").unwrap().0,
        *f,
        "a link names the same file"
    );
    assert_eq!(a.link(user, &fa, ra, b"f2").err(), Some(Error::Exist));

    // EXCLUSIVE: a retransmission (on either head) gets the same file; another verifier, EXIST.
    let v = *b"verifier";
    let x = a.create(user, ra, b"x", &CreateMode::Exclusive(v)).unwrap();
    let again = b.create(user, ra, b"x", &CreateMode::Exclusive(v)).unwrap();
    assert_eq!(again.handle, x.handle);
    let other = CreateMode::Exclusive(*b"another!");
    assert_eq!(a.create(user, ra, b"x", &other).err(), Some(Error::Exist));
    assert_eq!(
        a.create(user, ra, b"f2", &CreateMode::Exclusive(v)).err(),
        Some(Error::Exist)
    );

    // UNCHECKED over an existing file changes its size only; over a directory, ISDIR.
    let over = SetAttrs {
        mode: Some(0o777),
        size_bytes: Some(10),
        ..Default::default()
    };
    let u = b
        .create(user, ra, b"x", &CreateMode::Unchecked(over.clone()))
        .unwrap();
    assert_eq!(
        (u.handle, u.attr.size_bytes, u.attr.mode),
        (x.handle, 10, 0o600)
    );
    assert_eq!(
        b.create(user, ra, b"d", &CreateMode::Unchecked(over)).err(),
        Some(Error::IsDir)
    );
    assert_eq!(
        b.create(user, ra, b"x", &CreateMode::Guarded(SetAttrs::default()))
            .err(),
        Some(Error::Exist)
    );
    renaming_and_linking_as_linux_answers(a, user, ra);
    for name in [&b"p"[..], b"l", b"f2", b"x"] {
        a.remove(user, ra, name).unwrap();
    }
    a.rmdir(user, ra, b"d").unwrap();
}

/// The answers Linux gives where libcephfs 16.2.15 would answer otherwise (or worse: hang), as
/// tests/differential.rs found them. In `ra`: files `x` and `f2`, directory `d`.
fn renaming_and_linking_as_linux_answers(
    a: &CephFs,
    user: &Identity,
    ra: &rnfs_storage::VerifiedHandle,
) {
    // A missing source: NOENT, and the target name stays usable (libcephfs would leave it
    // "being renamed", and every later LOOKUP of it would wait forever).
    assert_eq!(
        a.rename(user, ra, b"nothing", ra, b"x").err(),
        Some(Error::NoEnt)
    );
    let (x, _) = a.lookup(user, ra, b"x").unwrap();
    // Onto itself, or onto another link of the same file: a no-op that keeps both names.
    a.rename(user, ra, b"x", ra, b"x").unwrap();
    assert_eq!(a.lookup(user, ra, b"x").unwrap().0, x);
    let d = a.lookup(user, ra, b"d").unwrap().0;
    let d = a.handle_key().verify(7, &d).unwrap();
    a.create(
        user,
        &d,
        b"inside",
        &CreateMode::Guarded(SetAttrs::default()),
    )
    .unwrap();
    // A file onto a non-empty directory: ISDIR (CephFS: NOTEMPTY); a directory onto a file:
    // NOTDIR; a directory into itself: INVAL; onto the directory that holds it: NOTEMPTY.
    assert_eq!(a.rename(user, ra, b"x", ra, b"d").err(), Some(Error::IsDir));
    assert_eq!(
        a.rename(user, ra, b"d", ra, b"x").err(),
        Some(Error::NotDir)
    );
    assert_eq!(
        a.rename(user, ra, b"d", &d, b"sub").err(),
        Some(Error::Inval)
    );
    assert_eq!(
        a.rename(user, &d, b"inside", ra, b"d").err(),
        Some(Error::NotEmpty)
    );
    a.remove(user, &d, b"inside").unwrap();
    // LINK onto an existing name: EXIST, whatever the source (CephFS: PERM for a directory).
    assert_eq!(a.link(user, &d, ra, b"x").err(), Some(Error::Exist));
    let xf = a.handle_key().verify(7, &x).unwrap();
    assert_eq!(a.link(user, &xf, ra, b"f2").err(), Some(Error::Exist));
    // A directory has no size to set, and nothing to commit.
    let size = SetAttrs {
        size_bytes: Some(1),
        ..Default::default()
    };
    assert_eq!(a.setattr(user, &d, &size, None).err(), Some(Error::IsDir));
    assert_eq!(a.commit(user, &d, 0, 0).err(), Some(Error::IsDir));
}

/// RENAME onto a file with other hard links leaves those links in place. libcephfs 16.2.15
/// turns this client's cached entries for the other links into "no such name" entries that it
/// trusts while it holds the directory's shared caps (tests/differential.rs found it): every
/// LOOKUP of them answered NOENT though the MDS kept them.
fn renaming_onto_a_linked_file_keeps_its_other_names(c: &CephFs, user: &Identity) {
    let rc = c.handle_key().verify(7, &c.root()).unwrap();
    let mode = SetAttrs {
        mode: Some(0o755),
        ..Default::default()
    };
    let solo = c.mkdir(user, &rc, b"solo", &mode).unwrap();
    let ra = c.handle_key().verify(7, &solo.handle).unwrap();
    let d = c.mkdir(user, &ra, b"d", &mode).unwrap();
    let d = c.handle_key().verify(7, &d.handle).unwrap();
    let guarded = CreateMode::Guarded(SetAttrs::default());
    let old = c.create(user, &ra, b"linked", &guarded).unwrap();
    let of = c.handle_key().verify(7, &old.handle).unwrap();
    c.link(user, &of, &ra, b"linked2").unwrap();
    c.link(user, &of, &d, b"linked3").unwrap();
    c.create(user, &ra, b"new", &guarded).unwrap();
    // Cached in this client before the rename.
    for (dir, name) in [(&ra, &b"linked2"[..]), (&d, b"linked3")] {
        assert_eq!(c.lookup(user, dir, name).unwrap().0, old.handle);
    }
    c.rename(user, &ra, b"new", &ra, b"linked").unwrap();
    for (dir, name) in [(&ra, &b"linked2"[..]), (&d, b"linked3")] {
        let (h, attr) = c
            .lookup(user, dir, name)
            .unwrap_or_else(|e| panic!("{}: {e:?}", String::from_utf8_lossy(name)));
        assert_eq!((h, attr.nlink), (old.handle.clone(), 2));
    }
    assert_ne!(c.lookup(user, &ra, b"linked").unwrap().0, old.handle);
}

/// READDIRPLUS page by page: each page continues the stream the previous one parked (see
/// ceph_listing.rs), every name comes exactly once (also the one that did not fit at the end of
/// a page), and another caller at the same cookie gets its own stream.
fn listing_in_pages_continues_the_same_stream(c: &CephFs, user: &Identity) {
    const FILES: usize = 300;
    const PAGE_ENTRIES: usize = 64;
    let rc = c.handle_key().verify(7, &c.root()).unwrap();
    let made = c
        .mkdir(
            user,
            &rc,
            b"many",
            &SetAttrs {
                mode: Some(0o755),
                ..Default::default()
            },
        )
        .unwrap();
    let dir = c.handle_key().verify(7, &made.handle).unwrap();
    for i in 0..FILES {
        let name = format!("f{i:03}");
        let how = CreateMode::Unchecked(SetAttrs::default());
        c.create(user, &dir, name.as_bytes(), &how).unwrap();
    }
    let page = |who: &Identity, cookie: u64| {
        let mut got = Vec::new();
        let listing = c
            .readdir(who, &dir, cookie, [0; 8], true, &mut |e| {
                if got.len() == PAGE_ENTRIES {
                    return false;
                }
                assert!(e.attr.is_some() && (e.handle.is_some() || &e.name[..] == b".."));
                got.push((e.name.to_vec(), e.cookie));
                true
            })
            .unwrap();
        (got, listing.eof)
    };
    let mut names = Vec::new();
    let mut cookie = 0;
    let mut pages = 0;
    loop {
        let (got, eof) = page(user, cookie);
        pages += 1;
        assert_eq!(c.parked_listings(), usize::from(!eof), "page {pages}");
        if pages == 2 {
            // Another caller at the same cookie gets the same page from a stream of its own
            // (opened and seeked), and the first caller's stream stays parked.
            let other = Identity {
                uid: 0,
                gid: 0,
                groups: vec![],
            };
            assert_eq!(page(&other, cookie), (got.clone(), eof));
            assert_eq!(c.parked_listings(), 2);
            let rest = got.last().unwrap().1;
            let done = c.readdir(&other, &dir, rest, [0; 8], true, &mut |_| true);
            assert!(done.unwrap().eof);
            assert_eq!(c.parked_listings(), 1);
        }
        cookie = got.last().map_or(cookie, |(_, k)| *k);
        names.extend(got.into_iter().map(|(n, _)| n));
        if eof {
            break;
        }
    }
    assert!(pages > FILES / PAGE_ENTRIES, "{pages} pages");
    names.sort();
    let mut want: Vec<Vec<u8>> = (0..FILES)
        .map(|i| format!("f{i:03}").into_bytes())
        .collect();
    want.extend([b".".to_vec(), b"..".to_vec()]);
    want.sort();
    assert_eq!(names, want, "every name once");
}

/// READ keeps the file open for the same caller (see ceph_files.rs), WRITE does not; permission
/// is still checked on every call, and removing the file closes it.
fn files_stay_open_between_a_callers_calls(c: &CephFs, user: &Identity) {
    let rc = c.handle_key().verify(7, &c.root()).unwrap();
    let how = CreateMode::Guarded(SetAttrs {
        mode: Some(0o644),
        ..Default::default()
    });
    let made = c.create(user, &rc, b"kept", &how).unwrap();
    let f = c.handle_key().verify(7, &made.handle).unwrap();
    let kept = c.kept_files();
    c.write(user, &f, 0, b"hello, kept", Stability::Unstable)
        .unwrap();
    c.write(user, &f, 5, b"!", Stability::Unstable).unwrap();
    assert_eq!(c.kept_files(), kept, "WRITEs keep nothing open");
    c.commit(user, &f, 0, 0).unwrap();
    let other = Identity {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    assert_eq!(&c.read(&other, &f, 0, 64).unwrap().data[..], b"hello! kept");
    assert_eq!(&c.read(&other, &f, 6, 5).unwrap().data[..], b" kept");
    assert_eq!(c.kept_files(), kept + 1, "one for the reader");
    // The owner takes the others' read permission away: the next READ is refused, though a
    // file is open for them.
    let private = SetAttrs {
        mode: Some(0o600),
        ..Default::default()
    };
    c.setattr(user, &f, &private, None).unwrap();
    assert_eq!(c.read(&other, &f, 0, 5).err(), Some(Error::Access));
    assert_eq!(&c.read(user, &f, 0, 5).unwrap().data[..], b"hello");
    c.remove(user, &rc, b"kept").unwrap();
    assert_eq!(c.kept_files(), kept, "closed with the file");
}

/// NFSv4.2's SEEK, ALLOCATE, DEALLOCATE, COPY and `user.` extended attributes, as the caller,
/// written through head A and seen through head B.
fn nfs42_calls_as_the_caller(a: &CephFs, b: &CephFs, user: &Identity) {
    let other = Identity {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    let ra = a.handle_key().verify(7, &a.root()).unwrap();
    let how = CreateMode::Guarded(SetAttrs {
        mode: Some(0o644),
        ..Default::default()
    });
    let made = a.create(user, &ra, b"v42", &how).unwrap();
    let fa = a.handle_key().verify(7, &made.handle).unwrap();
    let fb = b.handle_key().verify(7, &made.handle).unwrap();
    a.write(user, &fa, 0, &[7u8; 300_000], Stability::FileSync)
        .unwrap();

    // SEEK: all data, the one hole at the end; past the end is NXIO.
    let s = b.seek(user, &fb, SeekWhat::Data, 1000).unwrap();
    assert_eq!((s.offset, s.size_bytes), (Some(1000), 300_000));
    let s = b.seek(user, &fb, SeekWhat::Hole, 0).unwrap();
    assert_eq!(s.offset, Some(300_000));
    assert_eq!(
        b.seek(user, &fb, SeekWhat::Data, 300_000).err(),
        Some(Error::NxIo)
    );

    // DEALLOCATE keeps the size and reads zeros; ALLOCATE past the end grows the file.
    let w = a.deallocate(user, &fa, 4096, 8192).unwrap();
    assert_eq!(w.after.unwrap().size_bytes, 300_000);
    let r = b.read(user, &fb, 4090, 20).unwrap();
    assert_eq!(
        &r.data[..],
        &[7, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let w = a.allocate(user, &fa, 299_000, 11_000).unwrap();
    assert_eq!(w.after.unwrap().size_bytes, 310_000);
    assert_eq!(b.getattr(user, &fb).unwrap().size_bytes, 310_000);
    assert_eq!(a.allocate(&other, &fa, 0, 10).err(), Some(Error::Access));
    assert_eq!(a.deallocate(user, &fa, 0, 0).err(), Some(Error::Inval));

    // COPY: into a new file, short at the source's end; the reader sees it after COMMIT.
    let made = a.create(user, &ra, b"v42-copy", &how).unwrap();
    let ca = a.handle_key().verify(7, &made.handle).unwrap();
    let n = a.copy_range(user, &fa, &ca, (0, 10), 5_000_000).unwrap();
    assert_eq!(n, 310_000);
    a.commit(user, &ca, 0, 0).unwrap();
    let cb = b.handle_key().verify(7, &made.handle).unwrap();
    assert_eq!(b.getattr(user, &cb).unwrap().size_bytes, 310_010);
    let r = b.read(user, &cb, 4104, 4).unwrap();
    assert_eq!(&r.data[..], &[7, 7, 0, 0]);
    assert_eq!(a.copy_range(user, &fa, &ca, (400_000, 0), 10).unwrap(), 0);
    assert_eq!(
        a.copy_range(&other, &fa, &ca, (0, 0), 10).err(),
        Some(Error::Access),
        "the destination is not theirs to write"
    );

    // Extended attributes: only `user.` names, with create/replace semantics and permissions.
    assert!(a.xattr_support());
    a.setxattr(user, &fa, b"colour", b"blue", XattrSet::Create)
        .unwrap();
    assert_eq!(
        a.setxattr(user, &fa, b"colour", b"red", XattrSet::Create)
            .err(),
        Some(Error::Exist)
    );
    assert_eq!(
        a.setxattr(user, &fa, b"size", b"big", XattrSet::Replace)
            .err(),
        Some(Error::NoXattr)
    );
    a.setxattr(user, &fa, b"colour", b"green", XattrSet::Replace)
        .unwrap();
    a.setxattr(user, &fa, b"empty", b"", XattrSet::Either)
        .unwrap();
    assert_eq!(
        &b.getxattr(user, &fb, b"colour", 100).unwrap()[..],
        b"green"
    );
    assert_eq!(
        &b.getxattr(&other, &fb, b"colour", 100).unwrap()[..],
        b"green"
    );
    assert_eq!(
        b.getxattr(user, &fb, b"colour", 3).err(),
        Some(Error::XattrTooBig)
    );
    assert_eq!(
        b.getxattr(user, &fb, b"none", 100).err(),
        Some(Error::NoXattr)
    );
    assert_eq!(b.getxattr(user, &fb, b"empty", 100).unwrap().len(), 0);
    let mut names = b.listxattrs(user, &fb).unwrap();
    names.sort();
    assert_eq!(names, ["colour", "empty"]);
    assert_eq!(
        b.setxattr(&other, &fb, b"colour", b"x", XattrSet::Either)
            .err(),
        Some(Error::Access),
        "not theirs to change"
    );
    b.removexattr(user, &fb, b"colour").unwrap();
    assert_eq!(
        a.getxattr(user, &fa, b"colour", 100).err(),
        Some(Error::NoXattr)
    );
    assert_eq!(
        a.removexattr(user, &fa, b"colour").err(),
        Some(Error::NoXattr)
    );
    assert_eq!(a.listxattrs(user, &fa).unwrap(), ["empty"]);
    assert_eq!(a.getxattr(user, &fa, b"", 100).err(), Some(Error::Inval));
}

/// A read delegation's lease taken through head A: writes through A wait (Delay) and mark it
/// recalled; a write through head B waits in the MDS until A returns it, then goes through.
fn read_delegations_hold_across_heads(a: &CephFs, b: &CephFs, user: &Identity) {
    let ra = a.handle_key().verify(7, &a.root()).unwrap();
    let how = CreateMode::Guarded(SetAttrs {
        mode: Some(0o666),
        ..Default::default()
    });
    let made = a.create(user, &ra, b"delegated", &how).unwrap();
    let fa = a.handle_key().verify(7, &made.handle).unwrap();
    let fb = b.handle_key().verify(7, &made.handle).unwrap();
    let key = made.handle.to_bytes();
    // Written through B, read through A: A's Ceph client holds read caps only.
    b.write(user, &fb, 0, b"before", Stability::FileSync)
        .unwrap();
    assert_eq!(&a.read(user, &fa, 0, 6).unwrap().data[..], b"before");
    assert!(a.lease_break_ms().unwrap() >= 2000);
    eprintln!("delegation timeout {:?} ms", a.lease_break_ms());
    assert!(
        !a.lease(&fa, true).unwrap(),
        "no write delegations on CephFS"
    );
    assert!(a.lease(&fa, false).unwrap());
    assert_eq!(a.delegations_held(), 1);
    // Reads go on through A. Through B, the MDS may take caps back from A, which recalls the
    // delegation (libcephfs's rule, not ours); B's read then waits until it is returned, as
    // the server returns it once its NFS client has.
    assert_eq!(&a.read(user, &fa, 0, 6).unwrap().data[..], b"before");
    assert!(a.leases_broken().is_empty());
    std::thread::scope(|s| {
        let reader = s.spawn(|| b.read(user, &fb, 0, 6));
        let t = Instant::now();
        while !reader.is_finished() {
            assert!(t.elapsed().as_secs() < 30, "B's read never finished");
            if !a.leases_broken().is_empty() {
                eprintln!("B's read recalled A's delegation after {:?}", t.elapsed());
                a.unlease(&key);
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(&reader.join().unwrap().unwrap().data[..], b"before");
    });
    a.unlease(&key);
    // A write through A itself, then one through B: each waits (or is told to try again
    // later) until A returns the delegation, which they recall.
    for (head, fh, at, data) in [(a, &fa, 0, b"A"), (b, &fb, 1, b"B")] {
        assert!(a.lease(&fa, false).unwrap());
        let recalled_after = std::thread::scope(|s| {
            let t = Instant::now();
            let writer = s.spawn(|| loop {
                match head.write(user, fh, at, data, Stability::FileSync) {
                    Err(Error::Delay) => std::thread::sleep(std::time::Duration::from_millis(20)),
                    other => return other,
                }
            });
            while a.leases_broken().is_empty() {
                assert!(t.elapsed().as_secs() < 30, "A's delegation never recalled");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let recalled = t.elapsed();
            std::thread::sleep(std::time::Duration::from_millis(300));
            assert!(!writer.is_finished(), "written while A held the delegation");
            a.unlease(&key);
            writer.join().unwrap().unwrap();
            recalled
        });
        eprintln!("a write recalled A's delegation in {recalled_after:?}");
    }
    assert_eq!(&a.read(user, &fa, 0, 6).unwrap().data[..], b"ABfore");
    assert_eq!(a.delegations_held(), 0);
}
