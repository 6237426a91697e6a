//! The local backend's NFSv4.2 calls against a real directory: SEEK, ALLOCATE, DEALLOCATE and
//! user-namespace extended attributes, each as the caller. Runs as root (handles need
//! CAP_DAC_READ_SEARCH).

// Test code: panicking on an unexpected error is the point.
#![allow(clippy::unwrap_used)]

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};

use rnfs_storage::handle::HandleKey;
use rnfs_storage::local::LocalFs;
use rnfs_storage::{Backend, Error, Identity, SeekWhat, VerifiedHandle, XattrSet};

const USER: u32 = 1000;

fn user() -> Identity {
    Identity {
        uid: USER,
        gid: USER,
        groups: vec![],
    }
}

fn setup() -> (tempfile::TempDir, LocalFs) {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let fs = LocalFs::new(1, dir.path(), HandleKey::random().unwrap()).unwrap();
    (dir, fs)
}

fn handle(fs: &LocalFs, name: &str) -> VerifiedHandle {
    let root = fs.verify(&fs.root()).unwrap();
    let (fh, _) = fs
        .lookup(&Identity::root(), &root, name.as_bytes())
        .unwrap();
    fs.verify(&fh).unwrap()
}

#[test]
fn seek_and_deallocate_as_the_caller() {
    let (dir, fs) = setup();
    let p = dir.path().join("sparse");
    fs::write(&p, vec![9u8; 3 << 20]).unwrap();
    std::os::unix::fs::chown(&p, Some(USER), Some(USER)).unwrap();
    let fh = handle(&fs, "sparse");
    let blocks = fs::metadata(&p).unwrap().blocks();

    // A hole in the middle: reads return zeros there, the size stays, blocks go back.
    match fs.deallocate(&user(), &fh, 1 << 20, 1 << 20) {
        Err(Error::NotSupp) => return eprintln!("skipped: no hole punching here"),
        r => r.unwrap(),
    };
    let m = fs::metadata(&p).unwrap();
    assert_eq!(m.len(), 3 << 20);
    assert!(m.blocks() < blocks, "{blocks} -> {}", m.blocks());
    let r = fs.read(&user(), &fh, (1 << 20) + 5, 16).unwrap();
    assert_eq!(&r.data[..], &[0u8; 16]);

    let s = fs.seek(&user(), &fh, SeekWhat::Hole, 0).unwrap();
    assert_eq!((s.offset, s.size_bytes), (Some(1 << 20), 3 << 20));
    let s = fs.seek(&user(), &fh, SeekWhat::Data, 1 << 20).unwrap();
    assert_eq!(s.offset, Some(2 << 20));
    // The end of the file is a hole; past it there is nothing to find.
    let s = fs.seek(&user(), &fh, SeekWhat::Hole, 2 << 20).unwrap();
    assert_eq!(s.offset, Some(3 << 20));
    assert_eq!(
        fs.seek(&user(), &fh, SeekWhat::Data, 3 << 20).unwrap_err(),
        Error::NxIo
    );
    assert_eq!(
        fs.seek(&user(), &fh, SeekWhat::Data, u64::MAX).unwrap_err(),
        Error::NxIo
    );

    // A trailing hole: no data after the offset.
    fs.deallocate(&user(), &fh, 2 << 20, 1 << 20).unwrap();
    let s = fs
        .seek(&user(), &fh, SeekWhat::Data, (1 << 20) + 1)
        .unwrap();
    assert_eq!(s.offset, None);

    // ALLOCATE past the end extends the file; bad ranges are refused.
    fs.allocate(&user(), &fh, 3 << 20, 4096).unwrap();
    assert_eq!(fs::metadata(&p).unwrap().len(), (3 << 20) + 4096);
    assert_eq!(fs.allocate(&user(), &fh, 0, 0).unwrap_err(), Error::Inval);
    assert_eq!(
        fs.deallocate(&user(), &fh, u64::MAX, 2).unwrap_err(),
        Error::FBig
    );

    // Another user may neither write (ACCESS) nor, without read permission, seek.
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    let other = Identity {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    assert_eq!(
        fs.deallocate(&other, &fh, 0, 4096).unwrap_err(),
        Error::Access
    );
    assert_eq!(
        fs.seek(&other, &fh, SeekWhat::Data, 0).unwrap_err(),
        Error::Access
    );
}

#[test]
fn user_xattrs_as_the_caller() {
    let (dir, fs) = setup();
    if !fs.xattr_support() {
        return eprintln!("skipped: no user xattrs here");
    }
    let p = dir.path().join("f");
    fs::write(&p, b"x").unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&p, Some(USER), Some(USER)).unwrap();
    let fh = handle(&fs, "f");
    let me = user();

    assert_eq!(
        fs.getxattr(&me, &fh, b"k", 100).unwrap_err(),
        Error::NoXattr
    );
    assert_eq!(
        fs.setxattr(&me, &fh, b"k", b"v", XattrSet::Replace)
            .unwrap_err(),
        Error::NoXattr
    );
    let w = fs
        .setxattr(&me, &fh, b"k", b"v1", XattrSet::Create)
        .unwrap();
    assert!(w.before.is_some() && w.after.is_some());
    assert_eq!(
        fs.setxattr(&me, &fh, b"k", b"v2", XattrSet::Create)
            .unwrap_err(),
        Error::Exist
    );
    fs.setxattr(&me, &fh, b"k", b"value2", XattrSet::Either)
        .unwrap();
    assert_eq!(&fs.getxattr(&me, &fh, b"k", 100).unwrap()[..], b"value2");
    // Larger than the caller's bound.
    assert_eq!(
        fs.getxattr(&me, &fh, b"k", 5).unwrap_err(),
        Error::XattrTooBig
    );
    // On disk it is a user. attribute; other namespaces stay out of the listing.
    let out = std::process::Command::new("getfattr")
        .args(["-n", "user.k", "--only-values"])
        .arg(&p)
        .output();
    if let Ok(o) = out {
        if o.status.success() {
            assert_eq!(o.stdout, b"value2");
        }
    }
    fs.setxattr(&Identity::root(), &fh, b"trusted.t", b"1", XattrSet::Create)
        .unwrap();
    let names = fs.listxattrs(&me, &fh).unwrap();
    assert_eq!(names, vec!["k", "trusted.t"]);

    // Another user may read (mode 0644) but not change.
    let other = Identity {
        uid: 2000,
        gid: 2000,
        groups: vec![],
    };
    assert_eq!(&fs.getxattr(&other, &fh, b"k", 100).unwrap()[..], b"value2");
    assert_eq!(
        fs.setxattr(&other, &fh, b"k", b"x", XattrSet::Either)
            .unwrap_err(),
        Error::Access
    );
    assert_eq!(
        fs.removexattr(&other, &fh, b"k").unwrap_err(),
        Error::Access
    );
    fs.removexattr(&me, &fh, b"k").unwrap();
    assert_eq!(fs.removexattr(&me, &fh, b"k").unwrap_err(), Error::NoXattr);
    assert_eq!(
        fs.getxattr(&me, &fh, &[b'n'; 251], 10).unwrap_err(),
        Error::NameTooLong
    );
}
