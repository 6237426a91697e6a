//! Evicting another client's session by its uuid ([`rnfs_cephfs::evict`]), as a head does for a
//! head that died, against a real single-host cluster: the dead client's record locks go at
//! once, and the evicted client is fenced (its later calls fail, none hangs).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::mpsc;
use std::time::{Duration, Instant};

use rnfs_cephfs::test_cluster::TestCluster;
use rnfs_cephfs::{evict, Errno, Error, Mount, MountConfig, Perm};

fn config(cluster: &TestCluster, uuid: Option<&str>) -> MountConfig {
    MountConfig {
        conf: cluster.conf().to_owned(),
        client_id: "admin".into(),
        fs_name: Some("cephfs".into()),
        root: "/".into(),
        uuid: uuid.map(str::to_owned),
    }
}

#[test]
fn an_evicted_client_loses_its_locks_and_is_fenced() {
    let Some(cluster) = TestCluster::start().unwrap() else {
        return;
    };
    let root = Perm::new(0, 0, &[]).unwrap();
    let a = Mount::new(&config(&cluster, Some("rnfs-test:a"))).unwrap();
    let b = Mount::new(&config(&cluster, None)).unwrap();
    let (fa_ino, fa, _) = a
        .create(&a.root().unwrap(), b"f", 0o644, libc::O_RDWR, &root)
        .unwrap();
    assert_eq!(fa.write(0, b"acknowledged").unwrap(), 12);
    fa.fsync(false).unwrap();
    assert_eq!(fa.write(12, b" unstable").unwrap(), 9);
    assert!(fa.try_lock(1, true, 0, 0).unwrap());
    let (fb_ino, _) = b.lookup(&b.root().unwrap(), b"f", &root).unwrap();
    let fb = b.open(&fb_ino, libc::O_RDWR, &root).unwrap();
    assert!(!fb.try_lock(2, true, 0, 0).unwrap(), "a holds it");

    assert!(!evict(&config(&cluster, None), "rnfs-test:nobody").unwrap());
    let t = Instant::now();
    assert!(evict(&config(&cluster, None), "rnfs-test:a").unwrap());
    eprintln!("evicted in {:?}", t.elapsed());
    let t = Instant::now();
    while !fb.try_lock(2, true, 0, 0).unwrap() {
        assert!(t.elapsed() < Duration::from_secs(10), "a's lock still held");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("b took the lock {:?} after the eviction", t.elapsed());
    let mut buf = [0u8; 64];
    let n = fb.read(0, &mut buf).unwrap();
    eprintln!("b reads {:?}", String::from_utf8_lossy(&buf[..n]));
    assert!(buf[..n].starts_with(b"acknowledged"));

    // The evicted client's calls fail at once, and say why, rather than hang (run apart, with
    // a bound). A buffered write fails with EIO; calls that need the MDS name the eviction.
    let (tx, rx) = mpsc::channel();
    let perm = Perm::new(0, 0, &[]).unwrap();
    std::thread::spawn(move || {
        let r = [
            a.getattr(&fa_ino, &perm).map(|_| ()),
            a.lookup(&a.root().unwrap(), b"f", &perm).map(|_| ()),
            a.mkdir(&a.root().unwrap(), b"after", 0o755, &perm)
                .map(|_| ()),
        ];
        let _ = tx.send(r.map(|r| match r {
            Err(Error::Call { errno, .. }) => Some(errno),
            _ => None,
        }));
    });
    let got = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a's calls hung");
    assert_eq!(got, [Some(Errno::Blocklisted); 3]);
    // A new client under the same uuid mounts and serves again, with what was synced.
    let again = Mount::new(&config(&cluster, Some("rnfs-test:a"))).unwrap();
    let (ino, _) = again.lookup(&again.root().unwrap(), b"f", &root).unwrap();
    assert!(again.getattr(&ino, &root).unwrap().size >= 12);
}
