//! Storage faults, in process, through the fault-injecting backend (`rnfs_storage::fault`) over the
//! local one, and a real full file system (a small tmpfs):
//!
//! * EIO, ENOSPC, EDQUOT, EROFS, ESTALE, ENAMETOOLONG (and a few more) from the backend reach the
//!   client as the right `nfsstat3`, on every kind of procedure, and the server keeps serving;
//! * a write-back error (a COMMIT, or a FILE_SYNC WRITE, whose flush failed after the data reached
//!   the page cache) changes the write verifier returned by the next WRITE and COMMIT, so clients
//!   re-send what they have not seen committed;
//! * ENOSPC in the middle of a large multi-WRITE transfer (injected, and real on a full tmpfs)
//!   loses nothing already acknowledged as stable: every FILE_SYNC or committed byte is on disk.
//!
//! Needs root (the local backend opens file handles; the tmpfs test mounts one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rnfs_client::nfs3::*;
use rnfs_client::{Client, Error};
use rnfs_server::config::Limits;
use rnfs_server::Embedded;
use rnfs_storage::fault::{Action, FaultBackend, Op, Rule};
use rnfs_storage::handle::HandleKey;
use rnfs_storage::local::LocalFs;
use rnfs_storage::Error as E;

const UID: u32 = 1000;

/// An in-process server over `export_dir` through a [`FaultBackend`].
struct Server {
    server: Embedded,
    faults: Arc<FaultBackend>,
    _state: tempfile::TempDir,
}

impl Server {
    fn start(export_dir: &Path) -> Server {
        assert!(
            rnfs_server::running_as_root(),
            "needs root (open_by_handle_at)"
        );
        let state = tempfile::tempdir().unwrap();
        let key = HandleKey::random().unwrap();
        let local = Arc::new(LocalFs::new(5, export_dir, key).unwrap());
        let faults = Arc::new(FaultBackend::new(local));
        let server = Embedded::start(
            faults.clone(),
            5,
            "/export",
            export_dir.to_owned(),
            Limits::default(),
            state.path().join("state"),
        )
        .unwrap();
        Server {
            server,
            faults,
            _state: state,
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    fn client(&self) -> (Client, nfs_fh3) {
        let mut c = Client::connect_tcp(self.addr())
            .unwrap()
            .with_auth_sys(UID, UID, &[UID]);
        c.set_timeout(Duration::from_secs(20)).unwrap();
        let root = c.mount(b"/export").unwrap();
        (c, root)
    }

    fn fail(&self, op: Op, e: E) {
        self.faults.add_rule(Rule {
            op,
            action: Action::Fail(e),
            times: Some(1),
        });
    }
}

/// A scratch export owned by [`UID`] with a file `f` (64 KiB) and a directory `d`.
fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let export = dir.path().join("export");
    std::fs::create_dir(&export).unwrap();
    std::fs::write(export.join("f"), vec![7u8; 64 << 10]).unwrap();
    std::fs::create_dir(export.join("d")).unwrap();
    for p in [&export, &export.join("f"), &export.join("d")] {
        std::os::unix::fs::chown(p, Some(UID), Some(UID)).unwrap();
    }
    (dir, export)
}

#[track_caller]
fn status_of<T: std::fmt::Debug>(r: Result<T, Error>) -> nfsstat3 {
    match r {
        Err(Error::Nfs(s)) => s,
        other => panic!("expected an NFS error status, got {other:?}"),
    }
}

#[test]
fn storage_errors_reach_the_client_as_their_nfsstat3() {
    use nfsstat3::*;
    let (_dir, export) = scratch();
    let srv = Server::start(&export);
    let (mut c, root) = srv.client();
    let f = c.lookup(&root, b"f").unwrap().object;
    let d = c.lookup(&root, b"d").unwrap().object;
    type Call<'a> = Box<dyn Fn(&mut Client) -> nfsstat3 + 'a>;
    let cases: Vec<(Op, E, &str, nfsstat3, Call)> = vec![
        (
            Op::Getattr,
            E::Io,
            "GETATTR",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.getattr(&f))),
        ),
        (
            Op::Getattr,
            E::Stale,
            "GETATTR",
            NFS3ERR_STALE,
            Box::new(|c: &mut Client| status_of(c.getattr(&f))),
        ),
        (
            Op::Lookup,
            E::Stale,
            "LOOKUP",
            NFS3ERR_STALE,
            Box::new(|c: &mut Client| status_of(c.lookup(&root, b"f"))),
        ),
        (
            Op::Lookup,
            E::NameTooLong,
            "LOOKUP",
            NFS3ERR_NAMETOOLONG,
            Box::new(|c: &mut Client| status_of(c.lookup(&root, b"f"))),
        ),
        (
            Op::Access,
            E::Io,
            "ACCESS",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.access(&f, 0x3f))),
        ),
        (
            Op::Read,
            E::Io,
            "READ (4 KiB, buffered)",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.read(&f, 0, 4096))),
        ),
        (
            Op::Read,
            E::Io,
            "READ (64 KiB, spliced)",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.read(&f, 0, 64 << 10))),
        ),
        (
            Op::Read,
            E::Stale,
            "READ",
            NFS3ERR_STALE,
            Box::new(|c: &mut Client| status_of(c.read(&f, 0, 4096))),
        ),
        (
            Op::Readdir,
            E::Io,
            "READDIRPLUS",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.readdirplus(&root))),
        ),
        (
            Op::Readdir,
            E::Stale,
            "READDIR",
            NFS3ERR_STALE,
            Box::new(|c: &mut Client| status_of(c.readdir(&d))),
        ),
        (
            Op::Fsstat,
            E::Io,
            "FSSTAT",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.fsstat(&root))),
        ),
        (
            Op::Pathconf,
            E::Stale,
            "PATHCONF",
            NFS3ERR_STALE,
            Box::new(|c: &mut Client| status_of(c.pathconf(&root))),
        ),
        (
            Op::Write,
            E::NoSpc,
            "WRITE",
            NFS3ERR_NOSPC,
            Box::new(|c: &mut Client| {
                status_of(c.write(&f, 0, Bytes::from_static(b"x"), stable_how::UNSTABLE))
            }),
        ),
        (
            Op::Write,
            E::DQuot,
            "WRITE",
            NFS3ERR_DQUOT,
            Box::new(|c: &mut Client| {
                status_of(c.write(&f, 0, Bytes::from_static(b"x"), stable_how::FILE_SYNC))
            }),
        ),
        (
            Op::Write,
            E::Io,
            "WRITE",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| {
                status_of(c.write(&f, 0, Bytes::from_static(b"x"), stable_how::DATA_SYNC))
            }),
        ),
        (
            Op::Write,
            E::RoFs,
            "WRITE",
            NFS3ERR_ROFS,
            Box::new(|c: &mut Client| {
                status_of(c.write(&f, 0, Bytes::from_static(b"x"), stable_how::UNSTABLE))
            }),
        ),
        (
            Op::Write,
            E::FBig,
            "WRITE",
            NFS3ERR_FBIG,
            Box::new(|c: &mut Client| {
                status_of(c.write(&f, 0, Bytes::from_static(b"x"), stable_how::UNSTABLE))
            }),
        ),
        (
            Op::Commit,
            E::Io,
            "COMMIT",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.commit(&f, 0, 0))),
        ),
        (
            Op::Commit,
            E::NoSpc,
            "COMMIT",
            NFS3ERR_NOSPC,
            Box::new(|c: &mut Client| status_of(c.commit(&f, 0, 0))),
        ),
        (
            Op::Setattr,
            E::RoFs,
            "SETATTR",
            NFS3ERR_ROFS,
            Box::new(|c: &mut Client| {
                status_of(c.setattr(
                    &f,
                    sattr3 {
                        mode: Some(0o600),
                        ..Default::default()
                    },
                    None,
                ))
            }),
        ),
        (
            Op::Setattr,
            E::DQuot,
            "SETATTR",
            NFS3ERR_DQUOT,
            Box::new(|c: &mut Client| {
                status_of(c.setattr(
                    &f,
                    sattr3 {
                        size: Some(1 << 20),
                        ..Default::default()
                    },
                    None,
                ))
            }),
        ),
        (
            Op::Create,
            E::NoSpc,
            "CREATE",
            NFS3ERR_NOSPC,
            Box::new(|c: &mut Client| {
                status_of(c.create(&root, b"new", createhow3::Unchecked(sattr3::default())))
            }),
        ),
        (
            Op::Create,
            E::DQuot,
            "CREATE",
            NFS3ERR_DQUOT,
            Box::new(|c: &mut Client| {
                status_of(c.create(&root, b"new", createhow3::Guarded(sattr3::default())))
            }),
        ),
        (
            Op::Create,
            E::NameTooLong,
            "CREATE",
            NFS3ERR_NAMETOOLONG,
            Box::new(|c: &mut Client| {
                status_of(c.create(&root, b"new", createhow3::Exclusive([1; 8])))
            }),
        ),
        (
            Op::Create,
            E::RoFs,
            "CREATE",
            NFS3ERR_ROFS,
            Box::new(|c: &mut Client| {
                status_of(c.create(&root, b"new", createhow3::Unchecked(sattr3::default())))
            }),
        ),
        (
            Op::Mkdir,
            E::DQuot,
            "MKDIR",
            NFS3ERR_DQUOT,
            Box::new(|c: &mut Client| status_of(c.mkdir(&root, b"sub", sattr3::default()))),
        ),
        (
            Op::Mkdir,
            E::NoSpc,
            "MKDIR",
            NFS3ERR_NOSPC,
            Box::new(|c: &mut Client| status_of(c.mkdir(&root, b"sub", sattr3::default()))),
        ),
        (
            Op::Symlink,
            E::NameTooLong,
            "SYMLINK",
            NFS3ERR_NAMETOOLONG,
            Box::new(|c: &mut Client| status_of(c.symlink(&root, b"ln", b"f", sattr3::default()))),
        ),
        (
            Op::Mknod,
            E::Io,
            "MKNOD",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| {
                status_of(c.mknod(&root, b"fifo", mknoddata3::Fifo(sattr3::default())))
            }),
        ),
        (
            Op::Remove,
            E::RoFs,
            "REMOVE",
            NFS3ERR_ROFS,
            Box::new(|c: &mut Client| status_of(c.remove(&root, b"f"))),
        ),
        (
            Op::Remove,
            E::Stale,
            "REMOVE",
            NFS3ERR_STALE,
            Box::new(|c: &mut Client| status_of(c.remove(&root, b"f"))),
        ),
        (
            Op::Rmdir,
            E::Io,
            "RMDIR",
            NFS3ERR_IO,
            Box::new(|c: &mut Client| status_of(c.rmdir(&root, b"d"))),
        ),
        (
            Op::Rename,
            E::NameTooLong,
            "RENAME",
            NFS3ERR_NAMETOOLONG,
            Box::new(|c: &mut Client| status_of(c.rename(&root, b"f", &d, b"g"))),
        ),
        (
            Op::Rename,
            E::Stale,
            "RENAME",
            NFS3ERR_STALE,
            Box::new(|c: &mut Client| status_of(c.rename(&root, b"f", &d, b"g"))),
        ),
        (
            Op::Link,
            E::NoSpc,
            "LINK",
            NFS3ERR_NOSPC,
            Box::new(|c: &mut Client| status_of(c.link(&f, &d, b"hard"))),
        ),
        (
            Op::Link,
            E::DQuot,
            "LINK",
            NFS3ERR_DQUOT,
            Box::new(|c: &mut Client| status_of(c.link(&f, &d, b"hard"))),
        ),
        (
            Op::Getattr,
            E::ServerFault(libc::EOVERFLOW),
            "GETATTR",
            NFS3ERR_SERVERFAULT,
            Box::new(|c: &mut Client| status_of(c.getattr(&f))),
        ),
    ];
    let count = cases.len();
    for (op, err, what, want, call) in cases {
        srv.fail(op, err.clone());
        let fired = srv.faults.fired();
        let got = call(&mut c);
        assert_eq!(got, want, "{what} with {err:?} from the backend");
        assert_eq!(srv.faults.fired(), fired + 1, "{what}: the rule fired");
        srv.faults.clear();
        // The server keeps serving, on the same connection.
        c.getattr(&f)
            .unwrap_or_else(|e| panic!("GETATTR after {what}/{err:?}: {e}"));
    }
    // Nothing was changed by the refused calls.
    let mut names: Vec<_> = std::fs::read_dir(&export)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["d", "f"]);
    assert_eq!(
        std::fs::read(export.join("f")).unwrap(),
        vec![7u8; 64 << 10]
    );
    // And MOUNT of a directory below the export maps the error too.
    srv.fail(Op::Lookup, E::Io);
    let mut m = Client::connect_tcp(srv.addr())
        .unwrap()
        .with_auth_sys(UID, UID, &[UID]);
    assert!(matches!(
        m.mount(b"/export/d"),
        Err(Error::Mount(rnfs_client::mount::mountstat3::MNT3ERR_IO))
    ));
    println!("{count} injected errors mapped; server still serving");
}

#[test]
fn write_back_error_changes_the_write_verifier() {
    let (_dir, export) = scratch();
    let srv = Server::start(&export);
    let (mut c, root) = srv.client();
    let f = c.lookup(&root, b"f").unwrap().object;
    let data = |b: u8| Bytes::from(vec![b; 4096]);

    let v1 = c.write(&f, 0, data(1), stable_how::UNSTABLE).unwrap().verf;
    assert_eq!(
        c.write(&f, 4096, data(2), stable_how::UNSTABLE)
            .unwrap()
            .verf,
        v1
    );
    assert_eq!(
        c.commit(&f, 0, 0).unwrap().verf,
        v1,
        "no error: same verifier"
    );
    assert_eq!(srv.server.running.service.write_verifier(), v1);

    // COMMIT whose flush fails (after the data went out): the client sees the error, and every
    // later WRITE/COMMIT carries a new verifier.
    srv.faults.add_rule(Rule {
        op: Op::Commit,
        action: Action::FailAfter(E::Io),
        times: Some(1),
    });
    c.write(&f, 0, data(3), stable_how::UNSTABLE).unwrap();
    assert_eq!(status_of(c.commit(&f, 0, 0)), nfsstat3::NFS3ERR_IO);
    let v2 = c.write(&f, 0, data(3), stable_how::UNSTABLE).unwrap().verf;
    assert_ne!(v2, v1, "a write-back error must change the verifier");
    assert_eq!(c.commit(&f, 0, 0).unwrap().verf, v2);
    assert_eq!(
        c.write(&f, 0, data(4), stable_how::FILE_SYNC).unwrap().verf,
        v2
    );

    // A FILE_SYNC WRITE whose sync fails.
    srv.faults.add_rule(Rule {
        op: Op::Write,
        action: Action::FailAfter(E::Io),
        times: Some(1),
    });
    assert_eq!(
        status_of(c.write(&f, 0, data(5), stable_how::FILE_SYNC)),
        nfsstat3::NFS3ERR_IO
    );
    let v3 = c.write(&f, 0, data(5), stable_how::FILE_SYNC).unwrap().verf;
    assert!(
        v3 != v2 && v3 != v1,
        "a write-back error must change the verifier"
    );
    assert_eq!(c.commit(&f, 0, 0).unwrap().verf, v3);
    // Errors that are not write-back errors (the call did not run) leave it alone.
    srv.fail(Op::Write, E::NoSpc);
    assert_eq!(
        status_of(c.write(&f, 0, data(6), stable_how::UNSTABLE)),
        nfsstat3::NFS3ERR_NOSPC
    );
    assert_eq!(c.commit(&f, 0, 0).unwrap().verf, v3);
    println!("verifiers: {v1:02x?} -> {v2:02x?} -> {v3:02x?}");
}

/// Bytes of chunk `i` of a transfer (distinct per chunk and per byte).
fn chunk(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| {
            (j as u32)
                .wrapping_mul(2654435761)
                .wrapping_add(i as u32 * 97) as u8
                ^ (i as u8)
        })
        .collect()
}

#[test]
fn enospc_in_the_middle_of_a_large_write_loses_nothing_acknowledged_stable() {
    const CHUNK: usize = 64 << 10;
    const CHUNKS: usize = 48;
    const FAIL_AT: usize = 29;
    let (_dir, export) = scratch();
    let srv = Server::start(&export);
    let (mut c, root) = srv.client();
    let big = c
        .create(&root, b"big", createhow3::Unchecked(sattr3::default()))
        .unwrap()
        .obj
        .unwrap();
    // Chunks alternate between FILE_SYNC ones and UNSTABLE runs of 4 followed by COMMIT; ENOSPC
    // starts at chunk FAIL_AT, for WRITE and COMMIT alike.
    let mut stable: Vec<usize> = Vec::new();
    let mut unstable_pending: Vec<usize> = Vec::new();
    let mut verf = None;
    let mut nospc = 0;
    for i in 0..CHUNKS {
        if i == FAIL_AT {
            for op in [Op::Write, Op::Commit] {
                srv.faults.add_rule(Rule {
                    op,
                    action: Action::Fail(E::NoSpc),
                    times: None,
                });
            }
        }
        let how = if (i / 4) % 2 == 0 {
            stable_how::FILE_SYNC
        } else {
            stable_how::UNSTABLE
        };
        match c.write(&big, (i * CHUNK) as u64, Bytes::from(chunk(i, CHUNK)), how) {
            Ok(w) => {
                assert_eq!(w.count as usize, CHUNK);
                assert!(*verf.get_or_insert(w.verf) == w.verf);
                if w.committed == stable_how::UNSTABLE {
                    unstable_pending.push(i);
                } else {
                    stable.push(i);
                }
            }
            Err(Error::Nfs(nfsstat3::NFS3ERR_NOSPC)) => nospc += 1,
            Err(e) => panic!("chunk {i}: {e}"),
        }
        if how == stable_how::UNSTABLE && i % 4 == 3 {
            match c.commit(&big, 0, 0) {
                Ok(r) if Some(r.verf) == verf => stable.append(&mut unstable_pending),
                Ok(r) => panic!("verifier changed without a fault: {:?}", r.verf),
                // Not committed: the client would re-send these; they are not promised.
                Err(Error::Nfs(nfsstat3::NFS3ERR_NOSPC)) => unstable_pending.clear(),
                Err(e) => panic!("COMMIT after chunk {i}: {e}"),
            }
        }
    }
    assert_eq!(nospc, CHUNKS - FAIL_AT);
    assert!(
        stable.len() >= FAIL_AT - 4,
        "{} stable chunks",
        stable.len()
    );
    srv.faults.clear();
    // Everything acknowledged as stable is on disk, byte for byte (read behind the server's back)
    // and through the server.
    let on_disk = std::fs::read(export.join("big")).unwrap();
    for &i in &stable {
        let want = chunk(i, CHUNK);
        assert!(
            on_disk.get(i * CHUNK..(i + 1) * CHUNK) == Some(&want[..]),
            "chunk {i}, acknowledged stable, is not on disk intact"
        );
        let got = c.read(&big, (i * CHUNK) as u64, CHUNK as u32).unwrap();
        assert_eq!(got.data.as_bytes(), &want[..], "chunk {i} read back");
    }
    println!(
        "{} chunks of {} KiB acknowledged stable before ENOSPC, {} refused with NOSPC, all intact",
        stable.len(),
        CHUNK >> 10,
        nospc
    );
}

/// A tmpfs mounted for one test, unmounted (lazily) on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).ok()?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(at)
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "cannot mount a tmpfs ({}): skipping the real-ENOSPC half",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs(at.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A real full file system: WRITEs (FILE_SYNC, and UNSTABLE + COMMIT) until the tmpfs is full.
/// Short writes are allowed (the server reports the count written); whatever was acknowledged
/// stable must be there.
#[test]
fn real_enospc_on_a_full_tmpfs_loses_nothing_acknowledged_stable() {
    const CHUNK: usize = 96 << 10;
    let dir = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&dir.path().join("tmpfs"), "2m") else {
        return;
    };
    let export = fs.0.join("export");
    std::fs::create_dir(&export).unwrap();
    std::os::unix::fs::chown(&export, Some(UID), Some(UID)).unwrap();
    let srv = Server::start(&export);
    let (mut c, root) = srv.client();
    let mut results = Vec::new();
    for (file, how) in [
        ("sync", stable_how::FILE_SYNC),
        ("unstable", stable_how::UNSTABLE),
    ] {
        let fh = c
            .create(
                &root,
                file.as_bytes(),
                createhow3::Guarded(sattr3::default()),
            )
            .unwrap()
            .obj
            .unwrap();
        // (offset, bytes) acknowledged stable; a write may be short.
        let mut stable: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut pending: Vec<(usize, Vec<u8>)> = Vec::new();
        let mut offset = 0usize;
        let mut status = None;
        for i in 0..64 {
            let data = chunk(i, CHUNK);
            match c.write(&fh, offset as u64, Bytes::from(data.clone()), how) {
                Ok(w) => {
                    let n = w.count as usize;
                    assert!(n <= CHUNK);
                    let acked = (offset, data[..n].to_vec());
                    if w.committed == stable_how::UNSTABLE {
                        pending.push(acked);
                    } else {
                        stable.push(acked);
                    }
                    offset += n;
                    if n == 0 {
                        status = Some("short write of 0 bytes".to_string());
                        break;
                    }
                }
                Err(Error::Nfs(s)) => {
                    status = Some(format!("{s:?}"));
                    break;
                }
                Err(e) => panic!("{file}: WRITE {i}: {e}"),
            }
            if how == stable_how::UNSTABLE && i % 3 == 2 {
                match c.commit(&fh, 0, 0) {
                    Ok(_) => stable.append(&mut pending),
                    Err(Error::Nfs(_)) => pending.clear(),
                    Err(e) => panic!("{file}: COMMIT: {e}"),
                }
            }
        }
        if how == stable_how::UNSTABLE && c.commit(&fh, 0, 0).is_ok() {
            stable.append(&mut pending);
        }
        let status = status.expect("the 2 MiB tmpfs filled up");
        assert!(
            status.contains("NOSPC"),
            "{file}: a full file system is NFS3ERR_NOSPC, got {status}"
        );
        let on_disk = std::fs::read(export.join(file)).unwrap();
        for (off, bytes) in &stable {
            assert!(
                on_disk.get(*off..off + bytes.len()) == Some(&bytes[..]),
                "{file}: {} bytes at {off} acknowledged stable are not on disk intact",
                bytes.len()
            );
        }
        let total: usize = stable.iter().map(|(_, b)| b.len()).sum();
        results.push(format!(
            "{file}: {} KiB acknowledged stable, then {status}",
            total >> 10
        ));
        // Make room for the next file.
        c.remove(&root, file.as_bytes()).unwrap();
    }
    // Still serving.
    c.getattr(&root).unwrap();
    println!("real ENOSPC on a 2 MiB tmpfs: {}", results.join("; "));
    drop(srv);
    drop(fs);
}
