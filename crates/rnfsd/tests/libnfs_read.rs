//! Read-side acceptance tests with a real NFSv3 client: libnfs's `nfs-ls` and `nfs-cat` (package
//! libnfs-utils) talking TCP to the `rnfsd` binary on a random loopback port.
//!
//! libnfs facts these tests rely on (libnfs 4.0): `nfs-ls URL` mounts the URL's whole path and lists
//! it (`-R` recurses, at most 16 levels); `nfs-cat URL` mounts the URL's directory part and reads the
//! last component, so files read here sit at the export's top level; libnfs resolves symlinks and
//! normalizes `..` itself (it refuses to go above the mount), so `..` handling of the *server* is
//! covered by the MOUNT-path tests here and by raw LOOKUPs in `rpc_client.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Local view of a tree: relative path → (mode string, size, uid, gid).
fn local_tree(root: &Path) -> BTreeMap<String, (String, u64, u32, u32)> {
    use std::os::unix::fs::MetadataExt;
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (String, u64, u32, u32)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let e = e.unwrap();
            let meta = std::fs::symlink_metadata(e.path()).unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            out.insert(
                rel,
                (mode_string(&meta), meta.size(), meta.uid(), meta.gid()),
            );
            if meta.is_dir() {
                walk(root, &e.path(), out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// 10 directories × 1,000 files, a 12-level chain of nested directories with a file at each level,
/// odd names, and symlinks: 10,000 + 50 entries.
fn build_big_tree(export: &Path) -> usize {
    let mut n = 0;
    for d in 0..10 {
        let dir = export.join(format!("d{d:02}"));
        std::fs::create_dir(&dir).unwrap();
        set_mode(&dir, 0o755);
        n += 1;
        for f in 0..1000 {
            // Sizes 0..=2999 bytes; content irrelevant here (sizes are compared).
            let size = (d * 1000 + f) * 7 % 3000;
            let p = dir.join(format!("f{f:04}.dat"));
            std::fs::write(&p, vec![b'x'; size]).unwrap();
            set_mode(&p, if f % 3 == 0 { 0o600 } else { 0o644 });
            n += 1;
        }
    }
    // Nested: n/l01/l02/.../l12, with one file per level.
    let mut p = export.join("nested");
    std::fs::create_dir(&p).unwrap();
    n += 1;
    for level in 1..=12 {
        std::fs::write(p.join(format!("at-level-{level}")), level.to_string()).unwrap();
        p = p.join(format!("l{level:02}"));
        std::fs::create_dir(&p).unwrap();
        n += 2;
    }
    for name in [
        "with space",
        "ünïcödé-名前",
        "semi;colon",
        ".hidden",
        "-leading-dash",
        "x".repeat(255).as_str(),
    ] {
        std::fs::write(export.join(name), name.as_bytes()).unwrap();
        n += 1;
    }
    std::os::unix::fs::symlink("d00/f0001.dat", export.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink("nested", export.join("link-to-dir")).unwrap();
    std::os::unix::fs::symlink("no/such/target", export.join("dangling")).unwrap();
    n += 3;
    // Directories: make every one 0755 whatever the umask.
    for e in walkdirs(export) {
        set_mode(&e, 0o755);
    }
    n
}

fn walkdirs(root: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            out.push(e.path());
            out.extend(walkdirs(&e.path()));
        }
    }
    out
}

#[test]
fn nfs_ls_recursive_lists_ten_thousand_entries_exactly() {
    let mut srv = TestServer::new();
    let t = Instant::now();
    let created = build_big_tree(srv.export());
    let expected = local_tree(srv.export());
    assert_eq!(expected.len(), created, "test tree miscounted");
    eprintln!("built {created} entries in {:.2?}", t.elapsed());
    srv.start();

    let out = nfs_ls(&srv.url("", USER, USER), true, Duration::from_secs(180));
    out.assert_success();
    eprintln!("nfs-ls -R of {created} entries: {:.2?}", out.elapsed);
    let entries = parse_ls(&out.stdout_str()).unwrap();

    // Nothing twice.
    let mut seen = BTreeMap::new();
    let mut dups = Vec::new();
    for e in &entries {
        if seen.insert(e.path.clone(), e.clone()).is_some() {
            dups.push(e.path.clone());
        }
    }
    assert!(dups.is_empty(), "listed more than once: {dups:?}");

    // Nothing missing, nothing extra.
    let missing: Vec<_> = expected.keys().filter(|k| !seen.contains_key(*k)).collect();
    let extra: Vec<_> = seen.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{} missing (first: {:?}), {} extra (first: {:?})",
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        extra.len(),
        extra.iter().take(10).collect::<Vec<_>>()
    );
    assert_eq!(entries.len(), created);

    // Same type, permissions, owner; same size for files and symlinks (a symlink's size is its
    // target's length). Directory sizes are the file system's business.
    let mut wrong = Vec::new();
    for (path, (mode, size, uid, gid)) in &expected {
        let e = &seen[path];
        let size_matters = !mode.starts_with('d');
        if e.mode != *mode || (size_matters && e.size != *size) || e.uid != *uid || e.gid != *gid {
            wrong.push(format!(
                "{path}: local {mode} {size} {uid}:{gid}, listed {} {} {}:{}",
                e.mode, e.size, e.uid, e.gid
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} entries differ, e.g.:\n{}",
        wrong.len(),
        wrong[..wrong.len().min(10)].join("\n")
    );
}

#[test]
fn nfs_ls_of_a_large_single_directory_pages_correctly() {
    // 4,000 entries with long names in one directory: READDIR(PLUS) must page through many
    // replies (cookies, verifiers) without losing or repeating any.
    let mut srv = TestServer::new();
    let mut names = std::collections::BTreeSet::new();
    for i in 0..4000 {
        let name = format!("entry-{i:05}-{}", "n".repeat(i % 200));
        std::fs::write(srv.export().join(&name), b"").unwrap();
        names.insert(name);
    }
    srv.start();
    let out = nfs_ls(&srv.url("", USER, USER), false, Duration::from_secs(120));
    out.assert_success();
    eprintln!("nfs-ls of 4,000 entries: {:.2?}", out.elapsed);
    let listed: Vec<String> = parse_ls(&out.stdout_str())
        .unwrap()
        .into_iter()
        .map(|e| e.path)
        .collect();
    let set: std::collections::BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), set.len(), "duplicates in the listing");
    assert_eq!(set, names);

    // Unchanged for a moment, the directory's listing is remembered by the server (names,
    // cookies, handles; see rnfs_storage::local::listing) and later listings come from memory,
    // with fresh attributes. Each must match the directory as it is.
    let export = srv.export().to_path_buf();
    let ls_matches = |what: &str| {
        let out = nfs_ls(&srv.url("", USER, USER), false, Duration::from_secs(120));
        out.assert_success();
        let listed: BTreeMap<String, (String, u64, u32, u32)> = parse_ls(&out.stdout_str())
            .unwrap()
            .into_iter()
            .map(|e| (e.path, (e.mode, e.size, e.uid, e.gid)))
            .collect();
        assert_eq!(listed, local_tree(&export), "{what}");
    };
    let settle = rnfs_storage::local::listing::SETTLE_MS + 50;
    std::thread::sleep(Duration::from_millis(settle));
    ls_matches("the pass that remembers");
    ls_matches("from memory");
    // Attributes change without the directory changing; names change it.
    let first = export.join(names.first().unwrap());
    std::fs::write(&first, b"grown").unwrap();
    ls_matches("a file grew");
    std::fs::remove_file(export.join(names.last().unwrap())).unwrap();
    std::fs::write(export.join("a-new-name"), b"new").unwrap();
    ls_matches("a name removed and one added");
    std::thread::sleep(Duration::from_millis(settle));
    ls_matches("remembered again");
    ls_matches("from memory again");
}

/// Reads `url` with nfs-cat and compares its stdout, chunk by chunk, with the local file.
fn cat_and_compare(url: &str, local: &Path, timeout: Duration) -> (u64, Duration) {
    let expected_len = std::fs::metadata(local).unwrap().len();
    let mut cat = nfs_cat_stream(url, timeout);
    let mut remote = cat.stdout.take().unwrap();
    let mut file = std::fs::File::open(local).unwrap();
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    loop {
        // Fill `a` from nfs-cat as far as it goes (pipes deliver in pieces).
        let mut got = 0;
        while got < a.len() {
            let n = remote.read(&mut a[got..]).unwrap();
            if n == 0 {
                break;
            }
            got += n;
        }
        if got == 0 {
            break;
        }
        file.read_exact(&mut b[..got]).unwrap_or_else(|_| {
            panic!("nfs-cat gave more than the file's {expected_len} bytes (at offset {offset})")
        });
        if a[..got] != b[..got] {
            let i = a[..got]
                .iter()
                .zip(&b[..got])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!(
                "content differs at byte {} (remote {:#04x}, local {:#04x})",
                offset + i as u64,
                a[i],
                b[i]
            );
        }
        offset += got as u64;
    }
    drop(remote);
    let out = cat.finish(Vec::new());
    out.assert_success();
    assert_eq!(
        offset, expected_len,
        "nfs-cat stopped after {offset} of {expected_len} bytes"
    );
    (offset, out.elapsed)
}

/// Size of the big-file test in MiB: 256, or `RNFS_TEST_BIG_FILE_MIB` to try others locally.
fn big_file_mib() -> u64 {
    std::env::var("RNFS_TEST_BIG_FILE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

#[test]
fn nfs_cat_reads_a_256_mib_file_byte_exact() {
    let mut srv = TestServer::new();
    let path = srv.export().join("big.bin");
    let len = big_file_mib() << 20;
    let t = Instant::now();
    write_random_file(&path, len, 0x5eed_0001);
    eprintln!("wrote {} MiB in {:.2?}", len >> 20, t.elapsed());
    srv.start();

    let (n, elapsed) = cat_and_compare(
        &srv.url("/big.bin", USER, USER),
        &path,
        Duration::from_secs(600),
    );
    eprintln!(
        "nfs-cat read {} MiB in {:.2?} ({:.0} MiB/s)",
        n >> 20,
        elapsed,
        (n as f64 / (1 << 20) as f64) / elapsed.as_secs_f64()
    );
}

#[test]
fn nfs_cat_reads_small_and_odd_sized_files() {
    // Sizes around the usual transfer sizes and XDR padding boundaries.
    let mut srv = TestServer::new();
    let sizes = [
        0u64,
        1,
        3,
        4,
        5,
        4095,
        4096,
        4097,
        65_535,
        65_536,
        65_537,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        3 * (1 << 20) + 12_345,
    ];
    for (i, size) in sizes.iter().enumerate() {
        write_random_file(&srv.export().join(format!("s{i}")), *size, 77 + i as u64);
    }
    srv.start();
    for (i, size) in sizes.iter().enumerate() {
        let local = srv.export().join(format!("s{i}"));
        let (n, _) = cat_and_compare(
            &srv.url(&format!("/s{i}"), USER, USER),
            &local,
            Duration::from_secs(60),
        );
        assert_eq!(n, *size);
    }
}

#[test]
fn nfs_cp_copies_a_file_out_byte_exact() {
    let mut srv = TestServer::new();
    let src = srv.export().join("payload.bin");
    write_random_file(&src, 5 * (1 << 20) + 7, 42);
    srv.start();
    let dst = srv.scratch().join("copied.bin");
    let out = nfs_cp(
        &srv.url("/payload.bin", USER, USER),
        dst.to_str().unwrap(),
        Duration::from_secs(120),
    );
    out.assert_success();
    let a = std::fs::read(&src).unwrap();
    let b = std::fs::read(&dst).unwrap();
    assert_eq!(a.len(), b.len(), "copied size differs");
    assert!(a == b, "copied content differs");
}

#[test]
fn symlinks_are_followed_and_dangling_ones_fail() {
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    std::fs::write(ex.join("target.txt"), b"the target's content\n").unwrap();
    std::fs::create_dir(ex.join("sub")).unwrap();
    set_mode(&ex.join("sub"), 0o755);
    std::fs::write(ex.join("sub/inner.txt"), b"inner content\n").unwrap();
    let ln = |target: &str, name: &str| std::os::unix::fs::symlink(target, ex.join(name)).unwrap();
    ln("target.txt", "link");
    ln("link", "link-to-link");
    ln("sub/inner.txt", "link-into-sub");
    ln("sub/../target.txt", "link-with-dotdot");
    ln("missing-target", "dangling");
    ln("dangling", "link-to-dangling");
    srv.start();

    for (name, want) in [
        ("link", &b"the target's content\n"[..]),
        ("link-to-link", b"the target's content\n"),
        ("link-into-sub", b"inner content\n"),
        ("link-with-dotdot", b"the target's content\n"),
    ] {
        let out = nfs_cat(&srv.url(&format!("/{name}"), USER, USER), TOOL_TIMEOUT);
        out.assert_success();
        assert_eq!(out.stdout, want, "reading through {name}");
    }
    for name in ["dangling", "link-to-dangling"] {
        let out = nfs_cat(&srv.url(&format!("/{name}"), USER, USER), TOOL_TIMEOUT);
        out.assert_failure();
        assert!(out.stdout.is_empty(), "{name}: {}", out.describe());
        assert!(
            out.stderr.contains("NOENT"),
            "{name}: expected NFS3ERR_NOENT: {}",
            out.describe()
        );
    }

    // The listing shows the links as links, with their targets' lengths as sizes.
    let out = nfs_ls(&srv.url("", USER, USER), false, TOOL_TIMEOUT);
    out.assert_success();
    let entries = parse_ls(&out.stdout_str()).unwrap();
    let link = entries.iter().find(|e| e.path == "link-into-sub").unwrap();
    assert!(link.mode.starts_with('l'), "{link:?}");
    assert_eq!(link.size, "sub/inner.txt".len() as u64);
}

#[test]
fn missing_name_is_noent() {
    let mut srv = TestServer::new();
    std::fs::write(srv.export().join("present"), b"here").unwrap();
    srv.start();
    let out = nfs_cat(&srv.url("/absent", USER, USER), TOOL_TIMEOUT);
    out.assert_failure();
    assert!(out.stdout.is_empty());
    assert!(
        out.stderr.contains("NFS3ERR_NOENT"),
        "expected NFS3ERR_NOENT: {}",
        out.describe()
    );
    // Control: the neighbour is there.
    let out = nfs_cat(&srv.url("/present", USER, USER), TOOL_TIMEOUT);
    out.assert_success();
    assert_eq!(out.stdout, b"here");
}

#[test]
fn unreadable_file_is_denied_to_others_and_to_squashed_root() {
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    // The tests normally run as root (CI), so `secret` is owned by root; as another user it is
    // owned by that user, and the client claims a different uid.
    // SAFETY: geteuid/getegid cannot fail.
    let (owner, group) = unsafe { (libc::geteuid(), libc::getegid()) };
    let other = if owner == USER { USER + 1 } else { USER };
    std::fs::write(ex.join("secret"), b"top secret\n").unwrap();
    set_mode(&ex.join("secret"), 0o600);
    std::fs::write(ex.join("public"), b"public\n").unwrap();
    set_mode(&ex.join("public"), 0o644);
    if running_as_root() {
        // Owned by the client's user: readable by exactly that uid.
        std::fs::write(ex.join("mine"), b"mine\n").unwrap();
        set_mode(&ex.join("mine"), 0o600);
        chown(&ex.join("mine"), other, other);
    }
    srv.start();

    let denied = |uid: u32, gid: u32, name: &str| {
        let out = nfs_cat(&srv.url(&format!("/{name}"), uid, gid), TOOL_TIMEOUT);
        out.assert_failure();
        assert!(
            out.stdout.is_empty(),
            "{name} leaked to uid {uid}: {}",
            out.describe()
        );
        assert!(
            out.stderr.contains("ACCES"),
            "{name} as uid {uid}: expected an access error: {}",
            out.describe()
        );
    };
    let allowed = |uid: u32, gid: u32, name: &str, want: &[u8]| {
        let out = nfs_cat(&srv.url(&format!("/{name}"), uid, gid), TOOL_TIMEOUT);
        out.assert_success();
        assert_eq!(out.stdout, want, "{name} as uid {uid}");
    };

    denied(other, other, "secret");
    // Root is squashed to nobody by default: not the owner either, so root is refused too.
    denied(0, 0, "secret");
    // Group membership does not help with mode 0600.
    denied(other, group, "secret");
    // Controls: a 0644 file is readable by both, so the refusals above are about permissions.
    allowed(other, other, "public", b"public\n");
    allowed(0, 0, "public", b"public\n");
    if running_as_root() {
        allowed(other, other, "mine", b"mine\n");
        denied(other + 1, other + 1, "mine");
        // Squashed root is not the owner of `mine` either.
        denied(0, 0, "mine");
    }
}

#[test]
fn nfs_cat_of_a_directory_fails() {
    let mut srv = TestServer::new();
    let dir = srv.export().join("adir");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o755);
    // Entries, so the directory's size is not 0 on any file system (nfs-cat reads `size` bytes).
    for i in 0..20 {
        std::fs::write(dir.join(format!("file-{i}")), b"x").unwrap();
    }
    srv.start();
    let out = nfs_cat(&srv.url("/adir", USER, USER), TOOL_TIMEOUT);
    out.assert_failure();
    assert!(
        out.stdout.is_empty(),
        "reading a directory produced data: {}",
        out.describe()
    );
}

#[test]
fn mount_paths_with_dotdot_do_not_escape_the_export() {
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    // A sentinel next to the export (in its parent) that must never be visible.
    const SENTINEL: &str = "OUTSIDE-THE-EXPORT-7f3a";
    let parent = ex.parent().unwrap().to_owned();
    std::fs::write(parent.join(SENTINEL), SENTINEL.as_bytes()).unwrap();
    set_mode(&parent.join(SENTINEL), 0o644);
    std::fs::write(ex.join("inside"), b"inside").unwrap();
    std::fs::create_dir(ex.join("sub")).unwrap();
    set_mode(&ex.join("sub"), 0o755);
    std::os::unix::fs::symlink("..", ex.join("up")).unwrap();
    std::os::unix::fs::symlink(&parent, ex.join("abs-up")).unwrap();
    srv.start();

    let base = srv.mount_path();
    let port = srv.port();
    let url_for = |mount: &str, uid: u32| {
        format!(
            "nfs://127.0.0.1{mount}?version=3&nfsport={port}&mountport={port}&uid={uid}&gid={uid}"
        )
    };
    // Sanity: the export itself lists `inside` (so an empty listing below is not vacuous).
    let out = nfs_ls(&url_for(&base, USER), false, TOOL_TIMEOUT);
    out.assert_success();
    assert!(out.stdout_str().contains("inside"));

    for mount in [
        format!("{base}/.."),
        format!("{base}/../"),
        format!("{base}/sub/../.."),
        format!("{base}/./.."),
        format!("{base}/up"),
        format!("{base}/abs-up"),
        format!("{base}/../{}", ex.file_name().unwrap().to_str().unwrap()),
    ] {
        for uid in [USER, 0] {
            let out = nfs_ls(&url_for(&mount, uid), false, TOOL_TIMEOUT);
            assert!(
                !out.stdout_str().contains(SENTINEL),
                "MNT {mount:?} (uid {uid}) escaped the export: {}",
                out.describe()
            );
        }
    }
    // Reading the sentinel through a mount of the parent must fail too.
    let out = nfs_cat(
        &url_for(&format!("{base}/../{SENTINEL}"), USER),
        TOOL_TIMEOUT,
    );
    assert!(
        !out.stdout_str().contains(SENTINEL),
        "read a file outside the export: {}",
        out.describe()
    );
    out.assert_failure();
    // And a plain mount of the parent directory is refused (it is not exported).
    let out = nfs_ls(
        &url_for(parent.to_str().unwrap(), USER),
        false,
        TOOL_TIMEOUT,
    );
    out.assert_failure();
    assert!(!out.stdout_str().contains(SENTINEL));
}

#[test]
fn mount_paths_through_symlinks_inside_the_export_resolve() {
    // Linux's mountd resolves a MNT path with realpath: `/export/link/sub` mounts `real/sub`
    // when `link -> real`, whatever the link's form, as long as it stays inside the export.
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    std::fs::create_dir_all(ex.join("real/sub")).unwrap();
    set_mode(&ex.join("real"), 0o755);
    set_mode(&ex.join("real/sub"), 0o755);
    std::fs::write(ex.join("real/sub/found-it"), b"x").unwrap();
    std::fs::create_dir(ex.join("other")).unwrap();
    set_mode(&ex.join("other"), 0o755);
    let ln = |target: &Path, name: &str| std::os::unix::fs::symlink(target, ex.join(name)).unwrap();
    ln(Path::new("real"), "link");
    ln(Path::new("./other/../real/"), "winding");
    ln(&ex.join("real"), "absolute");
    ln(Path::new("link/sub"), "chain");
    ln(Path::new("loop-b"), "loop-a");
    ln(Path::new("loop-a"), "loop-b");
    ln(Path::new("real/sub/found-it"), "to-a-file");
    srv.start();

    let base = srv.mount_path();
    let port = srv.port();
    let url_for = |mount: &str| {
        format!(
            "nfs://127.0.0.1{mount}?version=3&nfsport={port}&mountport={port}&uid={USER}&gid={USER}"
        )
    };
    for mount in [
        format!("{base}/link/sub"),
        format!("{base}/winding/sub"),
        format!("{base}/absolute/sub"),
        format!("{base}/chain"),
        format!("{base}/other/../link/./sub"),
    ] {
        let out = nfs_ls(&url_for(&mount), false, TOOL_TIMEOUT);
        out.assert_success();
        assert!(
            out.stdout_str().contains("found-it"),
            "MNT {mount:?} did not reach real/sub: {}",
            out.describe()
        );
    }
    // A loop, and a link to a file, are refused (and the server goes on serving).
    for mount in [format!("{base}/loop-a"), format!("{base}/to-a-file")] {
        let out = nfs_ls(&url_for(&mount), false, TOOL_TIMEOUT);
        out.assert_failure();
        assert!(!out.stdout_str().contains("found-it"), "{}", out.describe());
    }
    // rnfsd's own client sees the statuses: NOTDIR for the file, ACCES for the loop.
    let mut c = rnfs_client::Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth_sys(USER, USER, &[USER]);
    let mut status = |p: String| c.mnt(p.as_bytes()).unwrap().status() as u32;
    assert_eq!(status(format!("{base}/to-a-file")), 20, "NOTDIR");
    assert_eq!(status(format!("{base}/loop-a")), 13, "ACCES");
    assert_eq!(status(format!("{base}/link/sub")), 0, "OK");
}
