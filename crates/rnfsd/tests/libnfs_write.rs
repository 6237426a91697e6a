//! Write-side acceptance tests with a real NFSv3 client: libnfs's `nfs-cp` (package libnfs-utils)
//! copying files into the `rnfsd` binary's export and back out, byte-exact, over TCP on a random
//! loopback port. The export belongs to uid 1000, which libnfs claims (`uid=`/`gid=` in the URL).
//!
//! The big copy is 1 GiB (`RNFS_TEST_WRITE_MIB` changes it); files are compared streaming, never
//! held in memory, and each direction's throughput is printed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Size of the big copy in MiB: 1024, or `RNFS_TEST_WRITE_MIB`.
fn big_mib() -> u64 {
    std::env::var("RNFS_TEST_WRITE_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// Deadline for one big copy: generous for a debug build on a busy machine.
const BIG_COPY_TIMEOUT: Duration = Duration::from_secs(900);

fn rate(bytes: u64, d: Duration) -> f64 {
    (bytes as f64 / (1 << 20) as f64) / d.as_secs_f64().max(1e-9)
}

/// Compares two files 1 MiB at a time; panics at the first difference.
fn compare_files(want: &Path, got: &Path) {
    let (lw, lg) = (
        std::fs::metadata(want).unwrap().len(),
        std::fs::metadata(got).unwrap().len(),
    );
    assert_eq!(lg, lw, "{} has {lg} bytes, expected {lw}", got.display());
    let mut a = std::fs::File::open(want).unwrap();
    let mut b = std::fs::File::open(got).unwrap();
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut offset = 0u64;
    while offset < lw {
        let n = (lw - offset).min(ba.len() as u64) as usize;
        a.read_exact(&mut ba[..n]).unwrap();
        b.read_exact(&mut bb[..n]).unwrap();
        if ba[..n] != bb[..n] {
            let i = ba[..n]
                .iter()
                .zip(&bb[..n])
                .position(|(x, y)| x != y)
                .unwrap();
            panic!(
                "{} differs from {} at byte {} (got {:#04x}, want {:#04x})",
                got.display(),
                want.display(),
                offset + i as u64,
                bb[i],
                ba[i]
            );
        }
        offset += n as u64;
    }
}

fn server() -> TestServer {
    let mut srv = TestServer::new();
    chown(srv.export(), USER, USER);
    srv.start();
    srv
}

#[test]
fn nfs_cp_copies_a_1_gib_file_in_and_out_byte_exact() {
    let srv = server();
    let len = big_mib() << 20;
    let src = srv.scratch().join("source.bin");
    let t = Instant::now();
    write_random_file(&src, len, 0x00c0_ffee);
    eprintln!("generated {} MiB in {:.2?}", len >> 20, t.elapsed());

    // In: local file → NFS.
    let out = nfs_cp(
        src.to_str().unwrap(),
        &srv.url("/big.bin", USER, USER),
        BIG_COPY_TIMEOUT,
    );
    out.assert_success();
    eprintln!(
        "nfs-cp IN: {} MiB in {:.2?} ({:.0} MiB/s)",
        len >> 20,
        out.elapsed,
        rate(len, out.elapsed)
    );
    let stored = srv.export().join("big.bin");
    let m = std::fs::metadata(&stored).unwrap();
    assert_eq!((m.uid(), m.gid()), (USER, USER), "owner of the copied file");
    let t = Instant::now();
    compare_files(&src, &stored);
    eprintln!("compared the stored file in {:.2?}", t.elapsed());

    // Out: NFS → local file.
    let back = srv.scratch().join("back.bin");
    let out = nfs_cp(
        &srv.url("/big.bin", USER, USER),
        back.to_str().unwrap(),
        BIG_COPY_TIMEOUT,
    );
    out.assert_success();
    eprintln!(
        "nfs-cp OUT: {} MiB in {:.2?} ({:.0} MiB/s)",
        len >> 20,
        out.elapsed,
        rate(len, out.elapsed)
    );
    compare_files(&src, &back);
}

#[test]
fn nfs_cp_copies_small_and_odd_sized_files_in() {
    let srv = server();
    let sizes: [u64; 12] = [
        0,
        1,
        3,
        4095,
        4096,
        4097,
        65_537,
        (1 << 20) - 1,
        1 << 20,
        (1 << 20) + 1,
        (2 << 20) + 4,
        3 * (1 << 20) + 12_345,
    ];
    let src_dir = srv.scratch().join("sources");
    std::fs::create_dir(&src_dir).unwrap();
    for (i, size) in sizes.iter().enumerate() {
        let src = src_dir.join(format!("s{i}"));
        write_random_file(&src, *size, 1000 + i as u64);
        let out = nfs_cp(
            src.to_str().unwrap(),
            &srv.url(&format!("/in-{i}"), USER, USER),
            Duration::from_secs(120),
        );
        out.assert_success();
        compare_files(&src, &srv.export().join(format!("in-{i}")));
    }
    // The listing through NFS shows them all with their sizes.
    let ls = nfs_ls(&srv.url("", USER, USER), false, TOOL_TIMEOUT);
    ls.assert_success();
    let entries = parse_ls(&ls.stdout_str()).unwrap();
    for (i, size) in sizes.iter().enumerate() {
        let name = format!("in-{i}");
        let e = entries
            .iter()
            .find(|e| e.path == name || e.path.ends_with(&format!("/{name}")))
            .unwrap_or_else(|| panic!("{name} not listed: {entries:?}"));
        assert_eq!(e.size, *size, "{name}'s size in nfs-ls");
        assert!(e.mode.starts_with('-'), "{name}: {}", e.mode);
    }
}

#[test]
fn nfs_cp_into_a_directory_the_user_cannot_write_fails_and_creates_nothing() {
    let mut srv = TestServer::new();
    // The export belongs to root, mode 0755: uid 1000 may read, not create.
    set_mode(srv.export(), 0o755);
    srv.start();
    let src = srv.scratch().join("src.bin");
    write_random_file(&src, 10_000, 5);
    let out = nfs_cp(
        src.to_str().unwrap(),
        &srv.url("/denied.bin", USER, USER),
        TOOL_TIMEOUT,
    );
    out.assert_failure();
    assert!(
        !srv.export().join("denied.bin").exists(),
        "a refused nfs-cp left a file behind"
    );
}
