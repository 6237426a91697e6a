//! Checks the hand-written declarations against the installed libcephfs header and library
//! (see the crate docs). Without `libcephfs-dev` the test skips with a reason, except in CI
//! (`CI=true`), where it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)]
use std::mem::{offset_of, size_of};
use std::path::Path;
use std::process::Command;

use rnfs_cephfs_sys::{ceph_statx, inodeno_t, vinodeno_t, API_FUNCTIONS};

const HEADER: &str = "/usr/include/cephfs/libcephfs.h";

fn header_present() -> bool {
    if Path::new(HEADER).exists() {
        return true;
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{HEADER} missing in CI: install libcephfs-dev (scripts/test does)"
    );
    eprintln!("skipped: {HEADER} missing (apt-get install libcephfs-dev)");
    false
}

/// What the C compiler says about the layouts, as `name value` lines.
fn c_layout() -> String {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("layout.c");
    let mut prog = String::from(
        "#include <stdio.h>\n#include <stddef.h>\n#include <dirent.h>\n#include <sys/statvfs.h>\n#include <cephfs/libcephfs.h>\nint main(void){\n",
    );
    prog.push_str("printf(\"statx %zu\\n\", sizeof(struct ceph_statx));\n");
    prog.push_str("printf(\"vinodeno %zu\\n\", sizeof(vinodeno_t));\n");
    prog.push_str("printf(\"inodeno %zu\\n\", sizeof(inodeno_t));\n");
    prog.push_str("printf(\"dirent %zu\\n\", sizeof(struct dirent));\n");
    prog.push_str("printf(\"statvfs %zu\\n\", sizeof(struct statvfs));\n");
    for f in STATX_FIELDS {
        prog.push_str(&format!(
            "printf(\"{f} %zu\\n\", offsetof(struct ceph_statx, {f}));\n"
        ));
    }
    prog.push_str("return 0;}\n");
    std::fs::write(&src, prog).unwrap();
    let exe = dir.path().join("layout");
    let cc = Command::new("cc")
        .arg("-D_FILE_OFFSET_BITS=64")
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output()
        .expect("run cc");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let out = Command::new(&exe).output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

const STATX_FIELDS: &[&str] = &[
    "stx_mask",
    "stx_blksize",
    "stx_nlink",
    "stx_uid",
    "stx_gid",
    "stx_mode",
    "stx_ino",
    "stx_size",
    "stx_blocks",
    "stx_dev",
    "stx_rdev",
    "stx_atime",
    "stx_ctime",
    "stx_mtime",
    "stx_btime",
    "stx_version",
];

fn rust_layout() -> String {
    let offsets = [
        offset_of!(ceph_statx, stx_mask),
        offset_of!(ceph_statx, stx_blksize),
        offset_of!(ceph_statx, stx_nlink),
        offset_of!(ceph_statx, stx_uid),
        offset_of!(ceph_statx, stx_gid),
        offset_of!(ceph_statx, stx_mode),
        offset_of!(ceph_statx, stx_ino),
        offset_of!(ceph_statx, stx_size),
        offset_of!(ceph_statx, stx_blocks),
        offset_of!(ceph_statx, stx_dev),
        offset_of!(ceph_statx, stx_rdev),
        offset_of!(ceph_statx, stx_atime),
        offset_of!(ceph_statx, stx_ctime),
        offset_of!(ceph_statx, stx_mtime),
        offset_of!(ceph_statx, stx_btime),
        offset_of!(ceph_statx, stx_version),
    ];
    let mut s = format!(
        "statx {}\nvinodeno {}\ninodeno {}\ndirent {}\nstatvfs {}\n",
        size_of::<ceph_statx>(),
        size_of::<vinodeno_t>(),
        size_of::<inodeno_t>(),
        size_of::<rnfs_cephfs_sys::dirent>(),
        size_of::<rnfs_cephfs_sys::statvfs>()
    );
    for (f, o) in STATX_FIELDS.iter().zip(offsets) {
        s.push_str(&format!("{f} {o}\n"));
    }
    s
}

#[test]
fn layouts_match_the_header() {
    if !header_present() {
        return;
    }
    assert_eq!(rust_layout(), c_layout());
}

#[test]
fn every_function_is_declared_and_exported() {
    if !header_present() {
        return;
    }
    let header = std::fs::read_to_string(HEADER).unwrap();
    for name in API_FUNCTIONS {
        assert!(
            header.contains(&format!("{name}(")),
            "{name} is not declared in {HEADER}"
        );
    }
    // Loading resolves every symbol, or names the missing one.
    let api = rnfs_cephfs_sys::api().unwrap();
    let (mut major, mut minor, mut patch) = (0, 0, 0);
    // SAFETY: ceph_version only writes the three ints and returns a static string.
    let v = unsafe { (api.ceph_version)(&mut major, &mut minor, &mut patch) };
    assert!(!v.is_null());
    assert!(
        major >= 16,
        "Ceph {major}.{minor}.{patch}: rnfsd needs 16 or later"
    );
}

#[test]
fn a_missing_library_says_what_to_install() {
    let e = rnfs_cephfs_sys::Api::load_from("libcephfs-missing.so.2")
        .err()
        .unwrap();
    let msg = e.to_string();
    assert!(msg.contains("install libcephfs2"), "{msg}");
}
