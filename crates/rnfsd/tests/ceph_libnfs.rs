//! libnfs's acceptance tests of libnfs_read.rs and libnfs_write.rs, against a `backend = "ceph"`
//! export of a throw-away cluster (scripts/ceph-cluster) instead of a local directory: the same
//! scenarios and the same expectations, with the fixtures laid out through libcephfs as root.
//!
//! * `nfs-ls -R` lists a tree of thousands of entries exactly once each, with the type, mode,
//!   owner and size they were made with;
//! * `nfs-cat` reads a 64 MiB file byte-exact, `nfs-cp` copies one in and out byte-exact;
//! * symlinks are followed (relative, chained, with `..`), dangling ones fail with NOENT;
//! * a 0600 file is refused to other users and to squashed root (ACCES), its owner reads it;
//! * `nfs-cat` of a directory fails, `nfs-cp` into a directory the user may not write fails and
//!   leaves nothing behind;
//! * MNT paths with `..` or symlinks never leave the export (a sentinel beside it stays
//!   unseen), and MNT through relative symlinks inside it resolves as Linux's mountd does.
//!   An absolute symlink names a path of some client's mount of CephFS, which means nothing on
//!   the head: MNT refuses it (a local export resolves it against its directory).
//!
//! One test function: one cluster (~10 s to start). Without Ceph installed the test is skipped
//! with the reason; in CI (`CI=true`) it fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::ceph::{head_config, Admin};
use common::*;
use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_storage::VerifiedHandle;

/// The exported directory inside CephFS (and its mount path); its parent holds the sentinel.
const PARENT: &str = "/libnfs";
const EXPORT: &str = "/libnfs/export";
const SENTINEL: &str = "OUTSIDE-THE-EXPORT-9c41";
/// Entries of the recursive listing's tree: 10 directories of 10 directories of 40 files, plus
/// a symlink per directory.
const TREE_DIRS: usize = 10;
const TREE_FILES: usize = 40;
const BIG_BYTES: usize = 64 << 20;

fn url(srv: &TestServer, mount: &str, path: &str, uid: u32) -> String {
    let p = srv.tcp_addr().port();
    format!("nfs://127.0.0.1{mount}{path}?version=3&nfsport={p}&mountport={p}&uid={uid}&gid={uid}")
}

/// `tree/` under `dir`, and what `nfs-ls -R` of it must show: path → (mode, size, uid, gid).
fn build_tree(admin: &Admin, dir: &VerifiedHandle) -> BTreeMap<String, (String, u64, u32, u32)> {
    let mut want = BTreeMap::new();
    let top = admin.mkdir(dir, "tree", 0o755);
    for i in 0..TREE_DIRS {
        let d = admin.mkdir(&top, &format!("d{i}"), 0o755);
        want.insert(format!("d{i}"), ("drwxr-xr-x".into(), 0, 0, 0));
        for j in 0..TREE_DIRS {
            let sub = admin.mkdir(&d, &format!("s{j}"), 0o705);
            want.insert(format!("d{i}/s{j}"), ("drwx---r-x".into(), 0, 0, 0));
            for k in 0..TREE_FILES {
                let len = (i * 7 + j * 3 + k) % 50;
                let f = admin.file(&sub, &format!("f{k}"), 0o640, &vec![b'x'; len]);
                let (uid, gid) = if k % 2 == 0 { (USER, USER) } else { (0, 0) };
                if uid != 0 {
                    admin.chown(&f, uid, gid);
                }
                want.insert(
                    format!("d{i}/s{j}/f{k}"),
                    ("-rw-r-----".into(), len as u64, uid, gid),
                );
            }
        }
        let target = format!("s{}/f1", i % TREE_DIRS);
        admin.symlink(&d, "link", &target);
        want.insert(
            format!("d{i}/link"),
            ("lrwxrwxrwx".into(), target.len() as u64, 0, 0),
        );
    }
    want
}

fn recursive_listing(srv: &TestServer, want: &BTreeMap<String, (String, u64, u32, u32)>) {
    let out = nfs_ls(
        &url(srv, EXPORT, "/tree", 0),
        true,
        Duration::from_secs(300),
    );
    out.assert_success();
    eprintln!("nfs-ls -R of {} entries: {:.2?}", want.len(), out.elapsed);
    let entries = parse_ls(&out.stdout_str()).unwrap();
    let mut seen = BTreeMap::new();
    for e in &entries {
        assert!(
            seen.insert(e.path.clone(), e.clone()).is_none(),
            "{} listed twice",
            e.path
        );
    }
    let missing: Vec<_> = want.keys().filter(|k| !seen.contains_key(*k)).collect();
    let extra: Vec<_> = seen.keys().filter(|k| !want.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} missing {:?}, {} extra {:?}",
        missing.len(),
        &missing[..missing.len().min(5)],
        extra.len(),
        &extra[..extra.len().min(5)]
    );
    for (path, (mode, size, uid, gid)) in want {
        let e = &seen[path];
        let size_matters = !mode.starts_with('d');
        assert!(
            e.mode == *mode && (!size_matters || e.size == *size) && e.uid == *uid && e.gid == *gid,
            "{path}: made {mode} {size} {uid}:{gid}, listed {} {} {}:{}",
            e.mode,
            e.size,
            e.uid,
            e.gid
        );
    }
}

fn big_file(srv: &TestServer, data: &[u8]) {
    let out = nfs_cat(
        &url(srv, EXPORT, "/big.bin", USER),
        Duration::from_secs(120),
    );
    out.assert_success();
    assert!(out.stdout == data, "nfs-cat of big.bin differs");
    let mib = data.len() as f64 / f64::from(1 << 20);
    eprintln!(
        "nfs-cat {mib} MiB: {:.0} MiB/s",
        mib / out.elapsed.as_secs_f64()
    );
    // In with nfs-cp, out again with nfs-cp, byte-exact.
    let src = srv.scratch().join("in.bin");
    write_random_file(&src, data.len() as u64, 77);
    let ceph_copy = url(srv, EXPORT, "/copied-in.bin", USER);
    nfs_cp(src.to_str().unwrap(), &ceph_copy, Duration::from_secs(120)).assert_success();
    let back = srv.scratch().join("out.bin");
    nfs_cp(&ceph_copy, back.to_str().unwrap(), Duration::from_secs(120)).assert_success();
    assert!(
        std::fs::read(&src).unwrap() == std::fs::read(&back).unwrap(),
        "nfs-cp in and out differs"
    );
}

fn symlinks(srv: &TestServer) {
    for (name, want) in [
        ("link", &b"the target's content\n"[..]),
        ("link-to-link", b"the target's content\n"),
        ("link-into-sub", b"inner content\n"),
        ("link-with-dotdot", b"the target's content\n"),
    ] {
        let out = nfs_cat(&url(srv, EXPORT, &format!("/{name}"), USER), TOOL_TIMEOUT);
        out.assert_success();
        assert_eq!(out.stdout, want, "reading through {name}");
    }
    for name in ["dangling", "link-to-dangling"] {
        let out = nfs_cat(&url(srv, EXPORT, &format!("/{name}"), USER), TOOL_TIMEOUT);
        out.assert_failure();
        assert!(out.stdout.is_empty(), "{name}: {}", out.describe());
        assert!(out.stderr.contains("NOENT"), "{name}: {}", out.describe());
    }
}

fn permissions(srv: &TestServer) {
    let other = USER + 1;
    let cat = |uid: u32, gid: u32, name: &str| {
        let u = url(srv, EXPORT, &format!("/{name}"), uid)
            .replace(&format!("gid={uid}"), &format!("gid={gid}"));
        nfs_cat(&u, TOOL_TIMEOUT)
    };
    let denied = |uid: u32, gid: u32, name: &str| {
        let out = cat(uid, gid, name);
        out.assert_failure();
        assert!(out.stdout.is_empty(), "{name} leaked to uid {uid}");
        assert!(
            out.stderr.contains("ACCES"),
            "{name} as uid {uid}: {}",
            out.describe()
        );
    };
    let allowed = |uid: u32, gid: u32, name: &str, want: &[u8]| {
        let out = cat(uid, gid, name);
        out.assert_success();
        assert_eq!(out.stdout, want, "{name} as uid {uid}");
    };
    denied(other, other, "secret");
    denied(0, 0, "secret"); // root is squashed to nobody
    denied(other, 0, "secret"); // the owner's group does not help with 0600
    allowed(other, other, "public", b"public\n");
    allowed(0, 0, "public", b"public\n");
    allowed(other, other, "mine", b"mine\n");
    denied(other + 1, other + 1, "mine");
    denied(0, 0, "mine");
}

fn failures(srv: &TestServer) {
    let out = nfs_cat(&url(srv, EXPORT, "/adir", USER), TOOL_TIMEOUT);
    out.assert_failure();
    assert!(out.stdout.is_empty(), "a directory read as data");
    let out = nfs_cat(&url(srv, EXPORT, "/absent", USER), TOOL_TIMEOUT);
    out.assert_failure();
    assert!(out.stderr.contains("NFS3ERR_NOENT"), "{}", out.describe());
    // uid 1000 may read `ro/`, not create in it.
    let src = srv.scratch().join("small.bin");
    write_random_file(&src, 10_000, 5);
    let out = nfs_cp(
        src.to_str().unwrap(),
        &url(srv, EXPORT, "/ro/denied.bin", USER),
        TOOL_TIMEOUT,
    );
    out.assert_failure();
    let ls = nfs_ls(&url(srv, EXPORT, "/ro", 0), false, TOOL_TIMEOUT);
    ls.assert_success();
    assert!(
        !ls.stdout_str().contains("denied.bin"),
        "a refused nfs-cp left a file behind"
    );
}

fn mount_paths(srv: &TestServer) {
    let ls = |mount: &str, uid: u32| nfs_ls(&url(srv, mount, "", uid), false, TOOL_TIMEOUT);
    // Sanity: the export lists `inside`, so an empty listing below is not vacuous.
    let out = ls(EXPORT, USER);
    out.assert_success();
    assert!(out.stdout_str().contains("inside"));
    for mount in [
        format!("{EXPORT}/.."),
        format!("{EXPORT}/../"),
        format!("{EXPORT}/sub/../.."),
        format!("{EXPORT}/./.."),
        format!("{EXPORT}/up"),
        format!("{EXPORT}/abs-up"),
        format!("{EXPORT}/../export"),
        PARENT.to_owned(),
    ] {
        for uid in [USER, 0] {
            let out = ls(&mount, uid);
            assert!(
                !out.stdout_str().contains(SENTINEL),
                "MNT {mount:?} (uid {uid}) escaped the export: {}",
                out.describe()
            );
        }
    }
    let out = nfs_cat(
        &url(srv, &format!("{EXPORT}/.."), &format!("/{SENTINEL}"), USER),
        TOOL_TIMEOUT,
    );
    out.assert_failure();
    assert!(!out.stdout_str().contains(SENTINEL));
    // Relative symlinks inside the export resolve, as with Linux's mountd.
    for mount in [
        format!("{EXPORT}/link-dir/sub"),
        format!("{EXPORT}/winding/sub"),
        format!("{EXPORT}/chain"),
        format!("{EXPORT}/other/../link-dir/./sub"),
    ] {
        let out = ls(&mount, USER);
        out.assert_success();
        assert!(
            out.stdout_str().contains("found-it"),
            "MNT {mount:?} did not reach real/sub: {}",
            out.describe()
        );
    }
    // A loop, a link to a file, and an absolute link are refused.
    for mount in [
        format!("{EXPORT}/loop-a"),
        format!("{EXPORT}/to-a-file"),
        format!("{EXPORT}/absolute/sub"),
    ] {
        let out = ls(&mount, USER);
        out.assert_failure();
        assert!(!out.stdout_str().contains("found-it"), "{}", out.describe());
    }
}

#[test]
fn libnfs_acceptance_on_a_ceph_export() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    let admin = Admin::new(&cluster);
    let t = Instant::now();
    let parent = admin.mkdir(&admin.root(), &PARENT[1..], 0o755);
    admin.file(&parent, SENTINEL, 0o644, SENTINEL.as_bytes());
    let ex = admin.mkdir(&parent, "export", 0o777);
    let tree = build_tree(&admin, &ex);
    let mut big = vec![0u8; BIG_BYTES];
    XorShift::new(19).fill(&mut big);
    admin.file(&ex, "big.bin", 0o644, &big);
    // Symlinks.
    admin.file(&ex, "target.txt", 0o644, b"the target's content\n");
    let sub = admin.mkdir(&ex, "sub", 0o755);
    admin.file(&sub, "inner.txt", 0o644, b"inner content\n");
    for (target, name) in [
        ("target.txt", "link"),
        ("link", "link-to-link"),
        ("sub/inner.txt", "link-into-sub"),
        ("sub/../target.txt", "link-with-dotdot"),
        ("missing-target", "dangling"),
        ("dangling", "link-to-dangling"),
    ] {
        admin.symlink(&ex, name, target);
    }
    // Permissions.
    admin.file(&ex, "secret", 0o600, b"top secret\n");
    admin.file(&ex, "public", 0o644, b"public\n");
    let mine = admin.file(&ex, "mine", 0o600, b"mine\n");
    admin.chown(&mine, USER + 1, USER + 1);
    // Failures.
    let adir = admin.mkdir(&ex, "adir", 0o755);
    for i in 0..20 {
        admin.file(&adir, &format!("file-{i}"), 0o644, b"x");
    }
    admin.mkdir(&ex, "ro", 0o755);
    // Mount paths.
    admin.file(&ex, "inside", 0o644, b"inside");
    admin.symlink(&ex, "up", "..");
    admin.symlink(&ex, "abs-up", PARENT);
    let real = admin.mkdir(&ex, "real", 0o755);
    let real_sub = admin.mkdir(&real, "sub", 0o755);
    admin.file(&real_sub, "found-it", 0o644, b"x");
    admin.mkdir(&ex, "other", 0o755);
    for (target, name) in [
        ("real", "link-dir"),
        ("./other/../real/", "winding"),
        ("link-dir/sub", "chain"),
        ("loop-b", "loop-a"),
        ("loop-a", "loop-b"),
        ("real/sub/found-it", "to-a-file"),
        ("/libnfs/export/real", "absolute"),
    ] {
        admin.symlink(&ex, name, target);
    }
    eprintln!(
        "laid out {} tree entries and the rest in {:.2?}",
        tree.len(),
        t.elapsed()
    );
    drop(admin);

    let mut srv = TestServer::new();
    srv.set_config(&head_config(&cluster, EXPORT, "admin", ""));
    srv.start();
    recursive_listing(&srv, &tree);
    big_file(&srv, &big);
    symlinks(&srv);
    permissions(&srv);
    failures(&srv);
    mount_paths(&srv);
}
