//! Identity and export security of the `rnfsd` binary:
//!
//! * callers act as themselves: a non-root caller cannot read or change another user's private
//!   file, and the kernel's checks (groups, directory permissions, sticky bit) apply;
//! * root is squashed (to 65534, or the rule's `anonuid`/`anongid`), `root_squash = false` keeps
//!   root, `all_squash` maps everybody, AUTH_NONE callers act as the anonymous identity;
//! * a read-only rule refuses every modifying procedure with NFS3ERR_ROFS and ACCESS grants no
//!   MODIFY/EXTEND/DELETE there; rules are tried in order;
//! * a client no rule covers (by source address: clients bind to 127.0.0.2 etc.) is refused at MOUNT
//!   with MNT3ERR_ACCES and on every NFS procedure with NFS3ERR_ACCES, even with valid handles
//!   obtained by an allowed client;
//! * a `secure` rule refuses calls from source ports ≥ 1024 with AUTH_ERROR/AUTH_TOOWEAK, and
//!   serves a client bound to a privileged port (the tests run as root).
//!
//! Every refusal is also checked to have changed nothing on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod nfsutil;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use bytes::Bytes;
use common::*;
use nfsutil::*;
use rnfs_client::nfs3::*;
use rnfs_client::rpc::auth_stat::AUTH_TOOWEAK;
use rnfs_client::{mount, Auth, Client, ReplyStatus};
use rnfs_xdr::{to_bytes, Opaque};

const OWNER: u32 = 2000;
const NOBODY: u32 = 65534;

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// A TCP client from 127.0.0.`last` (any port), claiming `uid`/`gid`.
fn client_from(srv: &TestServer, last: u8, uid: u32, gid: u32) -> Client {
    Client::connect_tcp_from(SocketAddr::new(ip(last), 0), srv.tcp_addr())
        .unwrap_or_else(|e| panic!("connect from 127.0.0.{last}: {e}"))
        .with_auth_sys(uid, gid, &[gid])
}

fn udp_from(srv: &TestServer, last: u8, uid: u32, gid: u32) -> Client {
    Client::connect_udp_from(SocketAddr::new(ip(last), 0), srv.udp_addr())
        .unwrap()
        .with_auth_sys(uid, gid, &[gid])
}

/// Root's AUTH_SYS credential.
fn root_auth() -> Auth {
    Auth::Sys {
        stamp: 0,
        machinename: Bytes::from_static(b"security-test"),
        uid: 0,
        gid: 0,
        gids: vec![0],
    }
}

/// A configuration with one export (the test server's directory) and these client rules.
fn config(srv: &TestServer, rules: &[&str]) -> String {
    let mut s = format!(
        "[[export]]\npath = \"{}\"\nid = 7\n",
        srv.export().display()
    );
    for r in rules {
        s.push_str("\n[[export.client]]\n");
        s.push_str(r);
        s.push('\n');
    }
    s
}

/// Owner, group, mtime (s, ns) and ctime (s, ns) of each entry.
type Stamps = BTreeMap<String, (u32, u32, i64, i64, i64, i64)>;

/// Everything that can change on disk, per entry: tree shape and content, owners and times.
fn disk_state(root: &Path) -> (Tree, Stamps) {
    let tree = local_tree(root);
    let mut meta = BTreeMap::new();
    for path in tree.keys() {
        let m = std::fs::symlink_metadata(if path.is_empty() {
            root.to_owned()
        } else {
            root.join(path)
        })
        .unwrap();
        meta.insert(
            path.clone(),
            (
                m.uid(),
                m.gid(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            ),
        );
    }
    (tree, meta)
}

#[track_caller]
fn assert_unchanged(what: &str, root: &Path, before: &(Tree, Stamps)) {
    let now = disk_state(root);
    assert_same_tree(what, &before.0, &now.0);
    for (path, m) in &before.1 {
        assert_eq!(
            now.1.get(path),
            Some(m),
            "{what}: owner or times of {path:?} changed"
        );
    }
}

/// Handles of the objects every procedure is tried on.
struct Handles {
    root: nfs_fh3,
    /// A regular file "f".
    file: nfs_fh3,
    /// A symbolic link "l".
    link: nfs_fh3,
}

/// Lays out the export: "f" (0666, owned by `uid`), "l" -> "f", empty directory "e" (0777), the
/// export itself 0777.
fn populate(export: &Path, uid: u32) {
    std::fs::write(export.join("f"), b"file content").unwrap();
    set_mode(&export.join("f"), 0o666);
    chown(&export.join("f"), uid, uid);
    std::os::unix::fs::symlink("f", export.join("l")).unwrap();
    std::fs::create_dir(export.join("e")).unwrap();
    set_mode(&export.join("e"), 0o777);
    set_mode(export, 0o777);
}

fn handles(c: &mut Client, srv: &TestServer) -> Handles {
    let root = mount_root(c, srv);
    Handles {
        file: fh_of(c, &root, "f"),
        link: fh_of(c, &root, "l"),
        root,
    }
}

/// What a call got: an NFS status, or an RPC-level refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Nfs(nfsstat3),
    Rpc(ReplyStatus),
}

/// Every NFSv3 procedure but NULL, with arguments on `h`: (procedure name, number, whether it
/// modifies, encoded arguments).
fn every_procedure(h: &Handles) -> Vec<(&'static str, u32, bool, Bytes)> {
    let f = &h.file;
    let r = &h.root;
    vec![
        (
            "GETATTR",
            NFSPROC3_GETATTR,
            false,
            to_bytes(&GETATTR3args { object: f.clone() }),
        ),
        (
            "SETATTR",
            NFSPROC3_SETATTR,
            true,
            to_bytes(&SETATTR3args {
                object: f.clone(),
                new_attributes: mode_attr(0o600),
                guard: None,
            }),
        ),
        (
            "LOOKUP",
            NFSPROC3_LOOKUP,
            false,
            to_bytes(&LOOKUP3args {
                what: dirop(r, "f"),
            }),
        ),
        (
            "ACCESS",
            NFSPROC3_ACCESS,
            false,
            to_bytes(&ACCESS3args {
                object: f.clone(),
                access: 0x3f,
            }),
        ),
        (
            "READLINK",
            NFSPROC3_READLINK,
            false,
            to_bytes(&READLINK3args {
                symlink: h.link.clone(),
            }),
        ),
        (
            "READ",
            NFSPROC3_READ,
            false,
            to_bytes(&READ3args {
                file: f.clone(),
                offset: 0,
                count: 100,
            }),
        ),
        (
            "WRITE",
            NFSPROC3_WRITE,
            true,
            to_bytes(&WRITE3args {
                file: f.clone(),
                offset: 0,
                count: 3,
                stable: stable_how::FILE_SYNC,
                data: Opaque(Bytes::from_static(b"BAD")),
            }),
        ),
        (
            "CREATE",
            NFSPROC3_CREATE,
            true,
            to_bytes(&CREATE3args {
                r#where: dirop(r, "new-file"),
                how: createhow3::Unchecked(mode_attr(0o644)),
            }),
        ),
        (
            "CREATE (exclusive)",
            NFSPROC3_CREATE,
            true,
            to_bytes(&CREATE3args {
                r#where: dirop(r, "new-excl"),
                how: createhow3::Exclusive(*b"12345678"),
            }),
        ),
        (
            "MKDIR",
            NFSPROC3_MKDIR,
            true,
            to_bytes(&MKDIR3args {
                r#where: dirop(r, "new-dir"),
                attributes: mode_attr(0o755),
            }),
        ),
        (
            "SYMLINK",
            NFSPROC3_SYMLINK,
            true,
            to_bytes(&SYMLINK3args {
                r#where: dirop(r, "new-link"),
                symlink: symlinkdata3 {
                    symlink_attributes: sattr3::default(),
                    symlink_data: Opaque(Bytes::from_static(b"f")),
                },
            }),
        ),
        (
            "MKNOD",
            NFSPROC3_MKNOD,
            true,
            to_bytes(&MKNOD3args {
                r#where: dirop(r, "new-fifo"),
                what: mknoddata3::Fifo(mode_attr(0o644)),
            }),
        ),
        (
            "REMOVE",
            NFSPROC3_REMOVE,
            true,
            to_bytes(&REMOVE3args {
                object: dirop(r, "f"),
            }),
        ),
        (
            "RMDIR",
            NFSPROC3_RMDIR,
            true,
            to_bytes(&RMDIR3args {
                object: dirop(r, "e"),
            }),
        ),
        (
            "RENAME",
            NFSPROC3_RENAME,
            true,
            to_bytes(&RENAME3args {
                from: dirop(r, "f"),
                to: dirop(r, "renamed"),
            }),
        ),
        (
            "LINK",
            NFSPROC3_LINK,
            true,
            to_bytes(&LINK3args {
                file: f.clone(),
                link: dirop(r, "hard-link"),
            }),
        ),
        (
            "READDIR",
            NFSPROC3_READDIR,
            false,
            to_bytes(&READDIR3args {
                dir: r.clone(),
                cookie: 0,
                cookieverf: [0; 8],
                count: 4096,
            }),
        ),
        (
            "READDIRPLUS",
            NFSPROC3_READDIRPLUS,
            false,
            to_bytes(&READDIRPLUS3args {
                dir: r.clone(),
                cookie: 0,
                cookieverf: [0; 8],
                dircount: 4096,
                maxcount: 16384,
            }),
        ),
        (
            "FSSTAT",
            NFSPROC3_FSSTAT,
            false,
            to_bytes(&FSSTAT3args { fsroot: r.clone() }),
        ),
        (
            "FSINFO",
            NFSPROC3_FSINFO,
            false,
            to_bytes(&FSINFO3args { fsroot: r.clone() }),
        ),
        (
            "PATHCONF",
            NFSPROC3_PATHCONF,
            false,
            to_bytes(&PATHCONF3args { object: r.clone() }),
        ),
        (
            "COMMIT",
            NFSPROC3_COMMIT,
            true,
            to_bytes(&COMMIT3args {
                file: f.clone(),
                offset: 0,
                count: 0,
            }),
        ),
    ]
}

fn call(c: &mut Client, proc_num: u32, args: &[u8]) -> Outcome {
    let r = c
        .call_raw(None, NFS_PROGRAM, NFS_V3, proc_num, args)
        .unwrap_or_else(|e| panic!("no reply to NFS procedure {proc_num}: {e}"));
    match r.status {
        ReplyStatus::Success(res) => {
            assert!(res.len() >= 4, "result without a status");
            let s = u32::from_be_bytes([res[0], res[1], res[2], res[3]]);
            let mut d = rnfs_xdr::Decoder::new(Bytes::copy_from_slice(&res[..4]));
            Outcome::Nfs(
                rnfs_xdr::XdrDecode::decode(&mut d)
                    .unwrap_or_else(|_| panic!("unknown nfsstat3 {s}")),
            )
        }
        other => Outcome::Rpc(other),
    }
}

#[test]
fn callers_act_as_themselves() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    set_mode(&ex, 0o755);
    chown(&ex, OWNER, OWNER);
    // Private and public files of OWNER; a group-readable one; a directory of OWNER; a sticky
    // directory anyone may write, holding OWNER's file.
    for (n, mode, gid) in [
        ("private", 0o600, OWNER),
        ("public", 0o644, OWNER),
        ("group", 0o640, 3000),
    ] {
        std::fs::write(ex.join(n), format!("{n} data")).unwrap();
        set_mode(&ex.join(n), mode);
        chown(&ex.join(n), OWNER, gid);
    }
    std::fs::create_dir(ex.join("sticky")).unwrap();
    set_mode(&ex.join("sticky"), 0o1777);
    std::fs::write(ex.join("sticky/theirs"), b"x").unwrap();
    chown(&ex.join("sticky/theirs"), OWNER, OWNER);
    srv.start();
    let before = disk_state(&ex);

    let mut c = tcp_as(&srv, USER, USER);
    let root = mount_root(&mut c, &srv);
    let private = fh_of(&mut c, &root, "private");
    let public = fh_of(&mut c, &root, "public");
    let group = fh_of(&mut c, &root, "group");
    let sticky = fh_of(&mut c, &root, "sticky");

    // Another user's private file: no reading, no writing, no truncating, no chmod.
    assert_eq!(nfs_err(c.read(&private, 0, 10)), nfsstat3::NFS3ERR_ACCES);
    assert_eq!(
        nfs_err(c.write(&private, 0, Bytes::from_static(b"x"), stable_how::FILE_SYNC)),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(
        nfs_err(c.setattr(&private, size_attr(0), None)),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(
        nfs_err(c.setattr(&private, mode_attr(0o666), None)),
        nfsstat3::NFS3ERR_PERM
    );
    let acc = c.access(&private, 0x3f).unwrap().access;
    assert_eq!(
        acc & (ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND),
        0,
        "ACCESS on another user's 0600 file granted {acc:#x}"
    );
    // Readable but not writable.
    assert_eq!(read_all(&mut c, &public).unwrap(), b"public data");
    assert_eq!(
        nfs_err(c.write(&public, 0, Bytes::from_static(b"x"), stable_how::UNSTABLE)),
        nfsstat3::NFS3ERR_ACCES
    );
    let acc = c.access(&public, 0x3f).unwrap().access;
    assert_eq!(acc & (ACCESS3_READ | ACCESS3_MODIFY), ACCESS3_READ);
    // No creating or removing in OWNER's 0755 directory.
    assert_eq!(
        nfs_err(c.create(&root, b"mine", createhow3::Guarded(mode_attr(0o644)))),
        nfsstat3::NFS3ERR_ACCES
    );
    assert_eq!(nfs_err(c.remove(&root, b"public")), nfsstat3::NFS3ERR_ACCES);
    assert_eq!(
        nfs_err(c.rename(&root, b"public", &root, b"moved")),
        nfsstat3::NFS3ERR_ACCES
    );
    // Sticky directory: may create, may not remove another user's file.
    let s = nfs_err(c.remove(&sticky, b"theirs"));
    assert!(
        matches!(s, nfsstat3::NFS3ERR_PERM | nfsstat3::NFS3ERR_ACCES),
        "REMOVE of another user's file in a sticky directory: {s}"
    );
    // Groups: only a caller in group 3000 may read "group".
    assert_eq!(nfs_err(c.read(&group, 0, 10)), nfsstat3::NFS3ERR_ACCES);
    let mut member =
        Client::connect_tcp(srv.tcp_addr())
            .unwrap()
            .with_auth_sys(USER, USER, &[USER, 3000]);
    assert_eq!(read_all(&mut member, &group).unwrap(), b"group data");
    assert_unchanged("after refused changes", &ex, &before);

    // The owner may do all of it (the refusals above were about identity, not the export).
    let mut owner = tcp_as(&srv, OWNER, OWNER);
    write_all(&mut owner, &private, 0, b"PRIVATE").unwrap();
    assert_eq!(read_all(&mut owner, &private).unwrap(), b"PRIVATE data");
    owner.setattr(&private, mode_attr(0o640), None).unwrap();
    // And the sticky directory lets USER create and remove its own file there.
    let mine = c
        .create(&sticky, b"mine", createhow3::Guarded(mode_attr(0o600)))
        .unwrap();
    let a = mine.obj_attributes.expect("CREATE without attributes");
    assert_eq!((a.uid, a.gid), (USER, USER), "new file's owner");
    let m = std::fs::metadata(ex.join("sticky/mine")).unwrap();
    assert_eq!((m.uid(), m.gid()), (USER, USER), "new file's owner on disk");
    c.remove(&sticky, b"mine").unwrap();
}

#[test]
fn root_is_squashed_to_nobody_by_default() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    set_mode(&ex, 0o777);
    std::fs::write(ex.join("roots"), b"root's secret").unwrap();
    set_mode(&ex.join("roots"), 0o600);
    srv.start();
    let mut c = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth(root_auth());
    let root = mount_root(&mut c, &srv);

    let f = c
        .create(&root, b"by-root", createhow3::Guarded(mode_attr(0o644)))
        .unwrap();
    let a = f.obj_attributes.unwrap();
    assert_eq!((a.uid, a.gid), (NOBODY, NOBODY), "file created by root");
    let d = c.mkdir(&root, b"dir-by-root", mode_attr(0o755)).unwrap();
    let a = d.obj_attributes.unwrap();
    assert_eq!(
        (a.uid, a.gid),
        (NOBODY, NOBODY),
        "directory created by root"
    );
    c.symlink(&root, b"link-by-root", b"x", sattr3::default())
        .unwrap();
    for n in ["by-root", "dir-by-root", "link-by-root"] {
        let m = std::fs::symlink_metadata(ex.join(n)).unwrap();
        assert_eq!((m.uid(), m.gid()), (NOBODY, NOBODY), "{n} on disk");
    }
    // Squashed root has no power over root's file, and cannot give files away.
    let roots = fh_of(&mut c, &root, "roots");
    assert_eq!(nfs_err(c.read(&roots, 0, 10)), nfsstat3::NFS3ERR_ACCES);
    assert_eq!(
        nfs_err(c.write(&roots, 0, Bytes::from_static(b"x"), stable_how::FILE_SYNC)),
        nfsstat3::NFS3ERR_ACCES
    );
    let fh = f.obj.unwrap();
    let s = nfs_err(c.setattr(
        &fh,
        sattr3 {
            uid: Some(0),
            ..Default::default()
        },
        None,
    ));
    assert_eq!(s, nfsstat3::NFS3ERR_PERM, "chown to root by squashed root");
    assert_eq!(std::fs::read(ex.join("roots")).unwrap(), b"root's secret");
}

#[test]
fn squash_options_map_identities_as_configured() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    set_mode(&ex, 0o777);
    std::fs::write(ex.join("users"), b"user 1000's file").unwrap();
    set_mode(&ex.join("users"), 0o600);
    chown(&ex.join("users"), USER, USER);
    std::fs::write(ex.join("others"), b"owner's file").unwrap();
    set_mode(&ex.join("others"), 0o600);
    chown(&ex.join("others"), OWNER, OWNER);
    srv.set_config(&config(
        &srv,
        &[
            "match = \"127.0.0.1\"\naccess = \"rw\"\nanonuid = 4321\nanongid = 4322",
            "match = \"127.0.0.3\"\naccess = \"rw\"\nroot_squash = false",
            "match = \"127.0.0.4\"\naccess = \"rw\"\nall_squash = true\nanonuid = 5555\nanongid = 5556",
        ],
    ));
    srv.start();

    let owner_of = |n: &str| {
        let m = std::fs::symlink_metadata(ex.join(n)).unwrap();
        (m.uid(), m.gid())
    };
    let make = |c: &mut Client, n: &str| {
        let root = mount_root(c, &srv);
        let r = c
            .create(&root, n.as_bytes(), createhow3::Guarded(mode_attr(0o644)))
            .unwrap_or_else(|e| panic!("CREATE {n}: {e}"));
        let a = r.obj_attributes.unwrap();
        (a.uid, a.gid)
    };

    // Root squashed to the configured anonymous identity.
    let mut c = client_from(&srv, 1, 0, 0).with_auth(root_auth());
    assert_eq!(make(&mut c, "root-squashed"), (4321, 4322));
    assert_eq!(owner_of("root-squashed"), (4321, 4322));
    // Ordinary users are themselves under that rule.
    let mut c = client_from(&srv, 1, USER, USER);
    assert_eq!(make(&mut c, "user-as-self"), (USER, USER));
    // AUTH_NONE acts as the anonymous identity.
    let mut c = Client::connect_tcp_from(SocketAddr::new(ip(1), 0), srv.tcp_addr()).unwrap();
    assert_eq!(make(&mut c, "auth-none"), (4321, 4322));

    // root_squash = false: root stays root (creates as 0, reads anybody's private file).
    let mut c = client_from(&srv, 3, 0, 0).with_auth(root_auth());
    assert_eq!(make(&mut c, "root-kept"), (0, 0));
    let root = mount_root(&mut c, &srv);
    let others = fh_of(&mut c, &root, "others");
    assert_eq!(read_all(&mut c, &others).unwrap(), b"owner's file");

    // all_squash: user 1000 acts as 5555:5556, so it cannot read its own private file.
    let mut c = client_from(&srv, 4, USER, USER);
    assert_eq!(make(&mut c, "all-squashed"), (5555, 5556));
    let root = mount_root(&mut c, &srv);
    let users = fh_of(&mut c, &root, "users");
    assert_eq!(nfs_err(c.read(&users, 0, 10)), nfsstat3::NFS3ERR_ACCES);
    // ... while from 127.0.0.1 it can.
    let mut c = client_from(&srv, 1, USER, USER);
    assert_eq!(read_all(&mut c, &users).unwrap(), b"user 1000's file");
}

#[test]
fn read_only_rule_refuses_every_modifying_procedure() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    populate(srv.export(), USER);
    // Rules in order: 127.0.0.3 read-only, then all of loopback read-write (first match wins).
    srv.set_config(&config(
        &srv,
        &[
            "match = \"127.0.0.3\"\naccess = \"ro\"",
            "match = \"127.0.0.0/8\"\naccess = \"rw\"",
        ],
    ));
    srv.start();
    let ex = srv.export().to_owned();

    let mut rw = client_from(&srv, 1, USER, USER);
    let h = handles(&mut rw, &srv);
    let want_all = ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
    // The read-write client is granted changes on the same objects (so the refusals below are
    // the rule's doing, not the files').
    let acc = rw.access(&h.file, want_all).unwrap().access;
    assert_eq!(
        acc & (ACCESS3_MODIFY | ACCESS3_EXTEND),
        ACCESS3_MODIFY | ACCESS3_EXTEND
    );
    let acc = rw.access(&h.root, want_all).unwrap().access;
    assert_eq!(acc & ACCESS3_DELETE, ACCESS3_DELETE);

    for udp in [false, true] {
        let mut ro = if udp {
            udp_from(&srv, 3, USER, USER)
        } else {
            client_from(&srv, 3, USER, USER)
        };
        // It mounts and reads.
        let own = handles(&mut ro, &srv);
        assert_eq!(own.file, h.file);
        let before = disk_state(&ex);
        for (what, proc_num, modifies, args) in every_procedure(&h) {
            let got = call(&mut ro, proc_num, &args);
            let want = if modifies {
                Outcome::Nfs(nfsstat3::NFS3ERR_ROFS)
            } else {
                Outcome::Nfs(nfsstat3::NFS3_OK)
            };
            assert_eq!(got, want, "{what} from a read-only client (udp: {udp})");
        }
        assert_unchanged("after a read-only client's calls", &ex, &before);
        for (what, fh) in [
            ("file", &h.file),
            ("directory", &h.root),
            ("symlink", &h.link),
        ] {
            let acc = ro.access(fh, want_all).unwrap().access;
            assert_eq!(
                acc & (ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE),
                0,
                "ACCESS on a read-only export granted {acc:#x} for the {what}"
            );
            if what != "symlink" {
                assert_ne!(acc & ACCESS3_READ, 0, "ACCESS READ on the {what}");
            }
        }
    }
    // Not even root (unsquashed or not) changes anything through the read-only rule.
    let mut ro_root = client_from(&srv, 3, 0, 0).with_auth(root_auth());
    let before = disk_state(&ex);
    for (what, proc_num, modifies, args) in every_procedure(&h) {
        if modifies {
            assert_eq!(
                call(&mut ro_root, proc_num, &args),
                Outcome::Nfs(nfsstat3::NFS3ERR_ROFS),
                "{what} by root from a read-only client"
            );
        }
    }
    assert_unchanged(
        "after root's calls through the read-only rule",
        &ex,
        &before,
    );
    // And the read-write client can in fact change things.
    write_all(&mut rw, &h.file, 0, b"FILE").unwrap();
    assert_eq!(std::fs::read(ex.join("f")).unwrap(), b"FILE content");
}

#[test]
fn client_outside_the_rules_is_refused_at_mount_and_on_every_procedure() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    populate(srv.export(), USER);
    srv.set_config(&config(
        &srv,
        &["match = \"127.0.0.1\"\naccess = \"rw\"\nroot_squash = false"],
    ));
    srv.start();
    let ex = srv.export().to_owned();

    let mut allowed = client_from(&srv, 1, USER, USER);
    let h = handles(&mut allowed, &srv);

    for udp in [false, true] {
        let mut stranger = if udp {
            udp_from(&srv, 2, USER, USER)
        } else {
            client_from(&srv, 2, USER, USER)
        };
        assert_eq!(stranger.local_addr().unwrap().ip(), ip(2));
        match stranger.mnt(srv.mount_path().as_bytes()).unwrap() {
            mount::mountres3::Fail(s) => assert_eq!(s, mount::mountstat3::MNT3ERR_ACCES),
            mount::mountres3::Ok(_) => panic!("a client outside the rules mounted (udp: {udp})"),
        }
        let before = disk_state(&ex);
        for (auth_name, auth) in [
            ("uid 1000", None),
            ("root", Some(root_auth())),
            ("AUTH_NONE", Some(Auth::None)),
        ] {
            if let Some(a) = auth {
                stranger.set_auth(a);
            }
            for (what, proc_num, _, args) in every_procedure(&h) {
                assert_eq!(
                    call(&mut stranger, proc_num, &args),
                    Outcome::Nfs(nfsstat3::NFS3ERR_ACCES),
                    "{what} with a valid handle from 127.0.0.2 as {auth_name} (udp: {udp})"
                );
            }
        }
        assert_unchanged("after a stranger's calls", &ex, &before);
    }
    // The allowed client still works, with the same handles.
    assert_eq!(read_all(&mut allowed, &h.file).unwrap(), b"file content");
    allowed.remove(&h.root, b"f").unwrap();
}

/// A TCP client bound to a privileged port on 127.0.0.1 (root may bind them).
fn privileged_client(srv: &TestServer) -> Client {
    let mut rng = XorShift::new(u64::from(std::process::id()) ^ 0x5ec0);
    let mut last = None;
    for _ in 0..200 {
        let port = 600 + (rng.next_u64() % 423) as u16;
        match Client::connect_tcp_from(SocketAddr::new(ip(1), port), srv.tcp_addr()) {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
    }
    panic!("no free privileged port on 127.0.0.1: {last:?}");
}

#[test]
fn secure_rule_refuses_unprivileged_source_ports() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    populate(srv.export(), USER);
    srv.set_config(&config(
        &srv,
        &["match = \"127.0.0.1\"\naccess = \"rw\"\nsecure = true"],
    ));
    srv.start();
    let ex = srv.export().to_owned();

    // A privileged source port is served.
    let mut good = privileged_client(&srv).with_auth_sys(USER, USER, &[USER]);
    assert!(good.local_addr().unwrap().port() < 1024);
    let h = handles(&mut good, &srv);
    assert_eq!(read_all(&mut good, &h.file).unwrap(), b"file content");

    for udp in [false, true] {
        let mut c = if udp {
            udp_from(&srv, 1, USER, USER)
        } else {
            client_from(&srv, 1, USER, USER)
        };
        assert!(c.local_addr().unwrap().port() >= 1024);
        // MOUNT refuses (as MNT3ERR_ACCES, or at the RPC level).
        let r = c.call_raw(
            None,
            mount::MOUNT_PROG,
            mount::MOUNT_V3,
            mount::MOUNTPROC3_MNT,
            &to_bytes::<mount::dirpath>(&Opaque(Bytes::from(srv.mount_path().into_bytes()))),
        );
        match r.unwrap().status {
            ReplyStatus::Success(res) => {
                let s = u32::from_be_bytes([res[0], res[1], res[2], res[3]]);
                assert_eq!(
                    s,
                    mount::mountstat3::MNT3ERR_ACCES as u32,
                    "MNT from an unprivileged port (udp: {udp})"
                );
            }
            ReplyStatus::AuthError(s) => assert_eq!(s, AUTH_TOOWEAK),
            other => panic!("MNT from an unprivileged port: {other}"),
        }
        let before = disk_state(&ex);
        for (what, proc_num, _, args) in every_procedure(&h) {
            assert_eq!(
                call(&mut c, proc_num, &args),
                Outcome::Rpc(ReplyStatus::AuthError(AUTH_TOOWEAK)),
                "{what} from an unprivileged port (udp: {udp})"
            );
        }
        assert_unchanged("after calls from an unprivileged port", &ex, &before);
    }
    // The privileged client may change things.
    write_all(&mut good, &h.file, 0, b"FILE").unwrap();
    assert_eq!(std::fs::read(ex.join("f")).unwrap(), b"FILE content");
}

/// CREATE over a name that is a symbolic link must not open the link's target: an existing file
/// outside the export must not be truncated or written, and a dangling link must not create a file
/// outside the export. (A plain `open(O_CREAT)` follows symlinks.)
#[test]
fn create_never_follows_a_symlink_out_of_the_export() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    set_mode(&ex, 0o777);
    let outside = srv.scratch().join("outside");
    std::fs::create_dir(&outside).unwrap();
    set_mode(&outside, 0o777);
    let victim = outside.join("victim");
    std::fs::write(&victim, b"must survive").unwrap();
    set_mode(&victim, 0o666);
    chown(&victim, USER, USER);
    let planted = outside.join("planted");
    std::os::unix::fs::symlink(&victim, ex.join("to-victim")).unwrap();
    std::os::unix::fs::symlink(&planted, ex.join("dangling")).unwrap();
    std::os::unix::fs::symlink("../outside/victim", ex.join("relative")).unwrap();
    srv.start();
    let mut c = tcp_as(&srv, USER, USER);
    let root = mount_root(&mut c, &srv);

    for name in ["to-victim", "dangling", "relative"] {
        for how in [
            createhow3::Unchecked(size_attr(0)),
            createhow3::Unchecked(sattr3::default()),
            createhow3::Guarded(mode_attr(0o644)),
            createhow3::Exclusive(*b"evilverf"),
        ] {
            let shown = format!("CREATE {:?} of {name}", how.mode());
            match c.create(&root, name.as_bytes(), how) {
                Err(rnfs_client::Error::Nfs(_)) => {}
                Err(e) => panic!("{shown}: {e}"),
                Ok(ok) => {
                    // If a server answers OK, the object must be the link itself, not its target;
                    // writing through the handle must not reach outside either.
                    if let Some(fh) = ok.obj {
                        let _ =
                            c.write(&fh, 0, Bytes::from_static(b"PWNED"), stable_how::FILE_SYNC);
                    }
                }
            }
            assert_eq!(
                std::fs::read(&victim).unwrap(),
                b"must survive",
                "{shown}: the file outside the export was changed"
            );
            assert!(
                !planted.exists(),
                "{shown}: a file was created outside the export"
            );
        }
    }
    for name in ["to-victim", "dangling", "relative"] {
        assert!(
            std::fs::symlink_metadata(ex.join(name))
                .unwrap()
                .file_type()
                .is_symlink(),
            "{name} is no longer a symlink"
        );
    }
}

/// Two exports with different rules: a handle of one export never lets a client act on the other
/// beyond its rules there (RENAME and LINK name two directories; both are checked).
#[test]
fn operations_across_exports_follow_both_exports_rules() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    let a = srv.export().to_owned();
    let b = srv.scratch().join("second");
    std::fs::create_dir(&b).unwrap();
    let b = b.canonicalize().unwrap();
    for d in [&a, &b] {
        populate(d, USER);
    }
    // Export A: 127.0.0.1 rw. Export B: 127.0.0.1 ro, 127.0.0.3 rw.
    srv.set_config(&format!(
        "{}\n[[export]]\npath = \"{}\"\nid = 8\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"ro\"\n\n[[export.client]]\nmatch = \"127.0.0.3\"\naccess = \"rw\"\n",
        config(&srv, &["match = \"127.0.0.1\"\naccess = \"rw\""]),
        b.display()
    ));
    srv.start();
    let before_a = disk_state(&a);
    let before_b = disk_state(&b);

    let mut one = client_from(&srv, 1, USER, USER);
    let ha = handles(&mut one, &srv);
    let rb = one.mount(b.to_str().unwrap().as_bytes()).unwrap();
    let fb = fh_of(&mut one, &rb, "f");
    assert_ne!(ha.root, rb, "two exports, one root handle");

    // 127.0.0.1: rw on A, ro on B. Nothing may move into or out of B, nor link across.
    for (what, r) in [
        (
            "RENAME A -> B",
            one.rename(&ha.root, b"f", &rb, b"moved").map(|_| ()),
        ),
        (
            "RENAME B -> A",
            one.rename(&rb, b"f", &ha.root, b"moved").map(|_| ()),
        ),
        (
            "LINK A file into B",
            one.link(&ha.file, &rb, b"linked").map(|_| ()),
        ),
        (
            "LINK B file into A",
            one.link(&fb, &ha.root, b"linked").map(|_| ()),
        ),
    ] {
        let s = nfs_err(r);
        assert!(
            matches!(
                s,
                nfsstat3::NFS3ERR_ROFS | nfsstat3::NFS3ERR_XDEV | nfsstat3::NFS3ERR_ACCES
            ),
            "{what} from 127.0.0.1: {s}"
        );
    }

    // 127.0.0.3: rw on B, nothing on A.
    let mut three = client_from(&srv, 3, USER, USER);
    match three.mnt(a.to_str().unwrap().as_bytes()).unwrap() {
        mount::mountres3::Fail(s) => assert_eq!(s, mount::mountstat3::MNT3ERR_ACCES),
        mount::mountres3::Ok(_) => panic!("127.0.0.3 mounted export A"),
    }
    let rb3 = three.mount(b.to_str().unwrap().as_bytes()).unwrap();
    assert_eq!(rb3, rb);
    assert_eq!(nfs_err(three.getattr(&ha.file)), nfsstat3::NFS3ERR_ACCES);
    for (what, r) in [
        (
            "RENAME B -> A",
            three.rename(&rb, b"f", &ha.root, b"moved").map(|_| ()),
        ),
        (
            "RENAME A -> B",
            three.rename(&ha.root, b"f", &rb, b"moved").map(|_| ()),
        ),
        (
            "LINK A file into B",
            three.link(&ha.file, &rb, b"linked").map(|_| ()),
        ),
        (
            "LINK B file into A",
            three.link(&fb, &ha.root, b"linked").map(|_| ()),
        ),
    ] {
        let s = nfs_err(r);
        assert!(
            matches!(s, nfsstat3::NFS3ERR_ACCES | nfsstat3::NFS3ERR_XDEV),
            "{what} from 127.0.0.3: {s}"
        );
    }
    assert_unchanged("export A after cross-export calls", &a, &before_a);
    assert_unchanged("export B after cross-export calls", &b, &before_b);
    // Within B, 127.0.0.3 may change things.
    three.rename(&rb, b"f", &rb, b"g").unwrap();
    assert!(b.join("g").exists());
}

/// Descriptors the server keeps open between calls are shared by all callers: permission must
/// still be decided per call, for the caller, with the file's current mode.
#[test]
fn open_files_kept_between_calls_do_not_carry_permission_over() {
    require_root("rnfsd; files owned by others");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    set_mode(&ex, 0o777);
    std::fs::write(ex.join("f"), b"owner's data").unwrap();
    set_mode(&ex.join("f"), 0o664);
    chown(&ex.join("f"), USER, USER);
    srv.start();

    let mut owner = tcp_as(&srv, USER, USER);
    let root = mount_root(&mut owner, &srv);
    let f = fh_of(&mut owner, &root, "f");
    // The owner reads and writes: the server now has the file open read-write.
    write_all(&mut owner, &f, 0, b"OWNER'S").unwrap();
    owner
        .write(&f, 0, Bytes::from_static(b"O"), stable_how::UNSTABLE)
        .unwrap();
    assert_eq!(read_all(&mut owner, &f).unwrap(), b"OWNER'S data");

    // A stranger (not in the group): may read (0664), may not write, truncate or commit.
    let mut stranger = tcp_as(&srv, OWNER, OWNER);
    let mut squashed_root = Client::connect_tcp(srv.tcp_addr())
        .unwrap()
        .with_auth(root_auth());
    for (who, c) in [
        ("another user", &mut stranger),
        ("squashed root", &mut squashed_root),
    ] {
        assert_eq!(
            read_all(c, &f).unwrap(),
            b"OWNER'S data",
            "{who} reading 0664"
        );
        assert_eq!(
            nfs_err(c.write(&f, 0, Bytes::from_static(b"X"), stable_how::UNSTABLE)),
            nfsstat3::NFS3ERR_ACCES,
            "{who} writing a file the owner has open"
        );
        assert_eq!(
            nfs_err(c.setattr(&f, size_attr(0), None)),
            nfsstat3::NFS3ERR_ACCES,
            "{who} truncating a file the owner has open"
        );
    }
    // A group member may write (0664) ...
    let mut member =
        Client::connect_tcp(srv.tcp_addr())
            .unwrap()
            .with_auth_sys(OWNER, OWNER, &[OWNER, USER]);
    member
        .write(&f, 0, Bytes::from_static(b"G"), stable_how::UNSTABLE)
        .unwrap();
    // ... until the owner takes the group's write bit away, then reading too.
    owner.setattr(&f, mode_attr(0o640), None).unwrap();
    assert_eq!(
        nfs_err(member.write(&f, 0, Bytes::from_static(b"g"), stable_how::FILE_SYNC)),
        nfsstat3::NFS3ERR_ACCES,
        "a group member wrote after the group lost write permission"
    );
    assert_eq!(read_all(&mut member, &f).unwrap(), b"GWNER'S data");
    owner.setattr(&f, mode_attr(0o600), None).unwrap();
    assert_eq!(
        nfs_err(member.read(&f, 0, 100)),
        nfsstat3::NFS3ERR_ACCES,
        "a group member read after the group lost read permission"
    );
    assert_eq!(
        nfs_err(stranger.read(&f, 0, 100)),
        nfsstat3::NFS3ERR_ACCES,
        "another user read a file after it became 0600"
    );
    owner.commit(&f, 0, 0).unwrap();
    assert_eq!(std::fs::read(ex.join("f")).unwrap(), b"GWNER'S data");
}

/// Runs `prog` locally: `Ok` when it ran and succeeded, else how it failed (with the errno of a
/// failed exec: ETXTBSY while somebody holds the file open for writing).
fn run_locally(prog: &Path) -> Result<(), String> {
    match std::process::Command::new(prog).status() {
        Ok(s) if s.success() => Ok(()),
        Ok(s) => Err(format!("ran, {s}")),
        Err(e) => Err(format!("exec failed: {e} (errno {:?})", e.raw_os_error())),
    }
}

/// Issue 14, finding 2: a WRITE, a SETATTR of the size or a CREATE UNCHECKED with a size that the
/// caller may not make must open nothing for writing. A descriptor the server holds open
/// read-write makes a local exec of the file fail with ETXTBSY (and breaks read leases) for as
/// long as it stays cached, and a caller repeating a denied call would keep it so. Callers with
/// permission (the owner of a 0444 file, by RFC 1813 §4.4's owner override) still write.
#[test]
fn denied_writes_open_nothing_for_writing() {
    require_root("rnfsd; a program owned by root");
    let Ok(bin) = std::fs::read("/bin/true") else {
        return eprintln!("skipped: no /bin/true");
    };
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    set_mode(&ex, 0o777);
    let prog = ex.join("prog");
    std::fs::write(&prog, &bin).unwrap();
    set_mode(&prog, 0o755); // root's: the tests run as root
    std::fs::write(ex.join("mine"), b"mine").unwrap();
    set_mode(&ex.join("mine"), 0o444);
    chown(&ex.join("mine"), OWNER, OWNER);
    std::fs::write(ex.join("shared"), b"shared").unwrap();
    set_mode(&ex.join("shared"), 0o666);
    srv.start();

    let mut c = tcp_as(&srv, OWNER, OWNER);
    let root = mount_root(&mut c, &srv);
    let prog_fh = fh_of(&mut c, &root, "prog");
    // Reading the program (as a client does to run it) keeps it open read-only only.
    assert_eq!(read_all(&mut c, &prog_fh).unwrap(), bin);
    assert_eq!(run_locally(&prog), Ok(()), "local exec after a READ");
    let before = disk_state(&ex);
    type Attempt<'a> = &'a dyn Fn(&mut Client) -> nfsstat3;
    let attempts: [(&str, Attempt); 3] = [
        ("WRITE", &|c| {
            nfs_err(c.write(
                &prog_fh,
                0,
                Bytes::from_static(b"BAD"),
                stable_how::UNSTABLE,
            ))
        }),
        ("SETATTR of the size", &|c| {
            nfs_err(c.setattr(&prog_fh, size_attr(0), None))
        }),
        ("CREATE UNCHECKED with a size", &|c| {
            nfs_err(c.create(&root, b"prog", createhow3::Unchecked(size_attr(0))))
        }),
    ];
    for (what, attempt) in attempts {
        // Repeated, as an attacker would: each time the program must run at once, well within
        // the 2-second round after which the server closes idle descriptors.
        for round in 1..=3 {
            let s = attempt(&mut c);
            assert!(
                matches!(s, nfsstat3::NFS3ERR_ACCES | nfsstat3::NFS3ERR_PERM),
                "{what} #{round} by uid {OWNER} of root's 0755 program: {s}"
            );
            assert_eq!(
                run_locally(&prog),
                Ok(()),
                "local exec right after the denied {what} #{round}"
            );
        }
    }
    assert_unchanged("after the denied calls", &ex, &before);
    assert_eq!(std::fs::read(&prog).unwrap(), bin);

    // Permission is still granted where it is due: the owner of a 0444 file, and anyone on a
    // 0666 file, write, truncate and CREATE UNCHECKED over it.
    for (name, want) in [("mine", b"MI"), ("shared", b"SH")] {
        let fh = fh_of(&mut c, &root, name);
        write_all(&mut c, &fh, 0, name.to_uppercase().as_bytes())
            .unwrap_or_else(|e| panic!("WRITE of {name}: {e}"));
        c.setattr(&fh, size_attr(3), None)
            .unwrap_or_else(|e| panic!("SETATTR of the size of {name}: {e}"));
        c.create(&root, name.as_bytes(), createhow3::Unchecked(size_attr(2)))
            .unwrap_or_else(|e| panic!("CREATE UNCHECKED over {name}: {e}"));
        assert_eq!(&std::fs::read(ex.join(name)).unwrap(), want, "{name}");
    }
}

/// An IPv4-mapped IPv6 rule is the IPv4 network it names: `::ffff:0.0.0.0/96` admits every IPv4
/// client (it refused 127.0.0.1 before: the prefix length was not rebased from 96), and
/// `::ffff:127.0.0.2/128` admits 127.0.0.2 and no other address.
#[test]
fn ipv4_mapped_rules_cover_the_ipv4_clients_they_name() {
    require_root("rnfsd");
    let mut srv = TestServer::new();
    srv.set_config(&config(&srv, &["match = \"::ffff:0.0.0.0/96\""]));
    srv.start();
    let mut c = client_from(&srv, 1, USER, USER);
    assert!(
        matches!(
            c.mnt(srv.mount_path().as_bytes()).unwrap(),
            mount::mountres3::Ok(_)
        ),
        "127.0.0.1 is inside ::ffff:0.0.0.0/96"
    );
    srv.stop();
    srv.set_config(&config(&srv, &["match = \"::ffff:127.0.0.2/128\""]));
    srv.start();
    for (last, admitted) in [(2, true), (3, false)] {
        let mut c = client_from(&srv, last, USER, USER);
        let mounted = matches!(
            c.mnt(srv.mount_path().as_bytes()).unwrap(),
            mount::mountres3::Ok(_)
        );
        assert_eq!(
            mounted, admitted,
            "127.0.0.{last} under ::ffff:127.0.0.2/128"
        );
    }
}

// -------------------------------------------------------------------------------------------------
// Staying inside the export when things move (issue 14: finding 3, objects moved out of the
// export by a local process; finding 4, handles of an export whose root was redefined).

/// A call's result with its NFS status as the error; panics on a failure without one.
fn nfs<T>(r: Result<T, rnfs_client::Error>) -> Result<T, nfsstat3> {
    r.map_err(|e| match e {
        rnfs_client::Error::Nfs(s) => s,
        other => panic!("expected an NFS status, got {other}"),
    })
}

/// The status a call got: `NFS3_OK` or its error.
fn status_of<T>(r: Result<T, rnfs_client::Error>) -> nfsstat3 {
    nfs(r).err().unwrap_or(nfsstat3::NFS3_OK)
}

/// Most `..` steps [`climb_to_passwd`] takes (far more than the scratch directory's depth).
const CLIMB_STEPS_MAX: usize = 64;

/// Finding 3's attack: from directory `start`, LOOKUP `..` until it leads no higher (the file
/// system's root), then `etc/passwd`, and READ it. Returns what was read, or the status that
/// stopped the climb.
fn climb_to_passwd(c: &mut Client, start: &nfs_fh3) -> Result<Vec<u8>, nfsstat3> {
    let mut dir = start.clone();
    let mut id = nfs(c.getattr(&dir))?.fileid;
    for _ in 0..CLIMB_STEPS_MAX {
        let up = nfs(c.lookup(&dir, b".."))?;
        let up_id = up.obj_attributes.map(|a| a.fileid);
        if up_id == Some(id) {
            break;
        }
        dir = up.object;
        id = nfs(c.getattr(&dir))?.fileid;
    }
    let etc = nfs(c.lookup(&dir, b"etc"))?.object;
    let passwd = nfs(c.lookup(&etc, b"passwd"))?.object;
    nfs(read_all(c, &passwd))
}

/// READ of `name` next to directory `dir` (in its parent, reached by LOOKUP `..`).
fn read_beside(c: &mut Client, dir: &nfs_fh3, name: &str) -> Result<Vec<u8>, nfsstat3> {
    let up = nfs(c.lookup(dir, b".."))?.object;
    let file = nfs(c.lookup(&up, name.as_bytes()))?.object;
    nfs(read_all(c, &file))
}

/// Finding 3: a directory a local process moves out of the export is no longer served, and
/// LOOKUP `..` from it leads nowhere (it led up to `/etc/passwd`: `..` only stopped at the export
/// root, which the climb never passes). Moved back, it is served again.
#[test]
fn a_directory_moved_out_of_the_export_leads_nowhere() {
    require_root("rnfsd");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    std::fs::create_dir_all(ex.join("sub/d")).unwrap();
    let outside = srv.scratch().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"not exported").unwrap();
    set_mode(&outside.join("secret"), 0o644);
    srv.start();
    let mut c = tcp_as(&srv, USER, USER);
    let root = mount_root(&mut c, &srv);
    let sub = fh_of(&mut c, &root, "sub");
    let d = fh_of(&mut c, &sub, "d");
    assert_eq!(fh_of(&mut c, &d, ".."), sub, "`..` inside the export");
    // In use when it moves (its descriptor cached): the move must be seen, not waited out.
    c.getattr(&d).unwrap();

    std::fs::rename(ex.join("sub/d"), outside.join("d")).unwrap();
    match climb_to_passwd(&mut c, &d) {
        Ok(data) => panic!(
            "read /etc/passwd ({} bytes, starting {:?}) through a directory moved out of the export",
            data.len(),
            String::from_utf8_lossy(&data[..data.len().min(32)])
        ),
        Err(s) => assert_eq!(s, nfsstat3::NFS3ERR_STALE, "climbing from a directory moved out"),
    }
    match read_beside(&mut c, &d, "secret") {
        Ok(data) => panic!(
            "read {:?}, outside the export, through a directory moved out of it",
            String::from_utf8_lossy(&data)
        ),
        Err(s) => assert_eq!(
            s,
            nfsstat3::NFS3ERR_STALE,
            "LOOKUP `..` of a directory moved out"
        ),
    }
    let how = createhow3::Guarded(mode_attr(0o644));
    for (what, s) in [
        ("GETATTR", status_of(c.getattr(&d))),
        ("READDIR", status_of(c.readdir(&d))),
        ("CREATE", status_of(c.create(&d, b"planted", how))),
    ] {
        assert_eq!(
            s,
            nfsstat3::NFS3ERR_STALE,
            "{what} of a directory moved out"
        );
    }
    assert!(
        !outside.join("d/planted").exists(),
        "created outside the export"
    );

    // Moved back, it is served again, and its `..` is its parent in the export.
    std::fs::rename(outside.join("d"), ex.join("sub/d")).unwrap();
    c.getattr(&d).unwrap();
    assert_eq!(fh_of(&mut c, &d, ".."), sub);
}

/// How GETATTR, and READ (files) or READDIR (directories), answer on each handle.
fn answers(
    c: &mut Client,
    dirs: &[(&str, &nfs_fh3)],
    files: &[(&str, &nfs_fh3)],
) -> BTreeMap<String, nfsstat3> {
    let mut out = BTreeMap::new();
    for (name, fh) in dirs {
        out.insert(format!("GETATTR {name}"), status_of(c.getattr(fh)));
        out.insert(format!("READDIR {name}"), status_of(c.readdir(fh)));
    }
    for (name, fh) in files {
        out.insert(format!("GETATTR {name}"), status_of(c.getattr(fh)));
        out.insert(format!("READ {name}"), status_of(c.read(fh, 0, 64)));
    }
    out
}

/// Whether the kernel finds a file's links inside a subtree itself (`open_by_handle_at` of a
/// "connectable" handle, Linux 6.13): rnfsd then serves a file linked both inside and outside
/// the export whichever link the kernel remembers first.
fn kernel_checks_subtrees() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut n = release
        .split(|c: char| !c.is_ascii_digit())
        .map(|s| s.parse::<u32>().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0)) >= (6, 13)
}

/// Finding 3, every kind of move: a directory moved out, a file moved out while the server holds
/// it open for READ, and their parent moved out (which changes neither child's ctime: only the
/// parent's). Each is STALE while outside — reads and writes alike, nothing is changed there —
/// and served again once moved back. A file linked both inside and outside is inside; once its
/// last link inside is gone, it is not.
#[test]
fn objects_moved_out_of_the_export_are_stale_until_moved_back() {
    require_root("rnfsd");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    let outside = srv.scratch().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::create_dir_all(ex.join("sub/d")).unwrap();
    set_mode(&ex.join("sub/d"), 0o777);
    for (path, data) in [
        ("sub/f", "file data"),
        ("sub/d/inner", "inner data"),
        ("sub/h", "linked"),
    ] {
        std::fs::write(ex.join(path), data).unwrap();
        set_mode(&ex.join(path), 0o666);
    }
    srv.start();
    let mut c = tcp_as(&srv, USER, USER);
    let root = mount_root(&mut c, &srv);
    let sub = fh_of(&mut c, &root, "sub");
    let d = fh_of(&mut c, &sub, "d");
    let f = fh_of(&mut c, &sub, "f");
    let inner = fh_of(&mut c, &d, "inner");
    let dirs = [("sub", &sub), ("sub/d", &d)];
    let files = [("sub/f", &f), ("sub/d/inner", &inner)];

    for (moved, stale) in [
        ("sub/d", &["sub/d", "sub/d/inner"][..]),
        ("sub/f", &["sub/f"][..]),
        ("sub", &["sub", "sub/d", "sub/f", "sub/d/inner"][..]),
    ] {
        // Everything in use (descriptors cached, files open for READ) when the move happens.
        let served = answers(&mut c, &dirs, &files);
        assert!(
            served.values().all(|s| *s == nfsstat3::NFS3_OK),
            "before moving {moved} out: {served:#?}"
        );
        let away = outside.join("moved");
        std::fs::rename(ex.join(moved), &away).unwrap();
        let want: BTreeMap<String, nfsstat3> = served
            .keys()
            .map(|k| {
                let name = k.split_once(' ').unwrap().1;
                let s = if stale.contains(&name) {
                    nfsstat3::NFS3ERR_STALE
                } else {
                    nfsstat3::NFS3_OK
                };
                (k.clone(), s)
            })
            .collect();
        assert_eq!(answers(&mut c, &dirs, &files), want, "{moved} moved out");
        // Nothing changes outside: no write, truncation or creation through the old handles.
        let before = disk_state(&outside);
        for (name, fh) in files.iter().filter(|(n, _)| stale.contains(n)) {
            for (what, s) in [
                (
                    "WRITE",
                    status_of(c.write(fh, 0, Bytes::from_static(b"X"), stable_how::FILE_SYNC)),
                ),
                ("SETATTR", status_of(c.setattr(fh, size_attr(0), None))),
            ] {
                assert_eq!(s, nfsstat3::NFS3ERR_STALE, "{what} {name} moved out");
            }
        }
        for (name, fh) in dirs.iter().filter(|(n, _)| stale.contains(n)) {
            let how = createhow3::Guarded(mode_attr(0o644));
            let s = status_of(c.create(fh, b"planted", how));
            assert_eq!(s, nfsstat3::NFS3ERR_STALE, "CREATE in {name} moved out");
        }
        assert_unchanged(
            &format!("outside, after calls on {moved}"),
            &outside,
            &before,
        );

        std::fs::rename(&away, ex.join(moved)).unwrap();
        let back = answers(&mut c, &dirs, &files);
        assert!(
            back.values().all(|s| *s == nfsstat3::NFS3_OK),
            "{moved} moved back: {back:#?}"
        );
    }
    assert_eq!(read_all(&mut c, &f).unwrap(), b"file data");
    assert_eq!(read_all(&mut c, &inner).unwrap(), b"inner data");

    // A file linked inside and outside (the outside link the newer one) is inside...
    let h = fh_of(&mut c, &sub, "h");
    std::fs::hard_link(ex.join("sub/h"), outside.join("h-link")).unwrap();
    if kernel_checks_subtrees() {
        assert_eq!(
            read_all(&mut c, &h).unwrap(),
            b"linked",
            "linked inside and outside"
        );
    }
    // ... until its last link inside is removed.
    std::fs::remove_file(ex.join("sub/h")).unwrap();
    assert_eq!(
        nfs_err(c.getattr(&h)),
        nfsstat3::NFS3ERR_STALE,
        "linked outside only"
    );
    assert_eq!(
        nfs_err(c.read(&h, 0, 10)),
        nfsstat3::NFS3ERR_STALE,
        "linked outside only"
    );
    std::fs::hard_link(outside.join("h-link"), ex.join("sub/h")).unwrap();
    assert_eq!(
        read_all(&mut c, &h).unwrap(),
        b"linked",
        "linked inside again"
    );
}

/// A configuration with export id 9 at `path`, read-write for 127.0.0.1.
fn export_nine(path: &Path) -> String {
    format!(
        "[[export]]\npath = \"{}\"\nid = 9\n\n[[export.client]]\nmatch = \"127.0.0.1\"\naccess = \"rw\"\n",
        path.display()
    )
}

/// Finding 4: handles are tied to their export's root. Export 9 at X hands out a handle of
/// X/other/f; once export 9 is X/sub, that handle must not read or write X/other/f (it did: the
/// MAC covered only the export id and the kernel handle). It is STALE — RFC 1813's answer for a
/// handle whose object is no longer served — and so is every other handle of the old export 9,
/// X/sub/g included: the export's key changed with its root. New handles work.
#[test]
fn handles_are_tied_to_the_export_root() {
    require_root("rnfsd");
    let mut srv = TestServer::new();
    let ex = srv.export().to_owned();
    for dir in ["other", "sub"] {
        std::fs::create_dir(ex.join(dir)).unwrap();
        set_mode(&ex.join(dir), 0o777);
    }
    for (path, data) in [("other/f", "other's data"), ("sub/g", "sub's data")] {
        std::fs::write(ex.join(path), data).unwrap();
        set_mode(&ex.join(path), 0o666);
    }
    srv.set_config(&export_nine(&ex));
    srv.start();
    let mut c = tcp_as(&srv, USER, USER);
    let root = mount_root(&mut c, &srv);
    let other_f = resolve(&mut c, &root, "other/f").unwrap();
    let sub_g = resolve(&mut c, &root, "sub/g").unwrap();
    assert_eq!(read_all(&mut c, &other_f).unwrap(), b"other's data");
    drop(c);

    // Export 9 becomes X/sub; the server restarts with the same key (same state directory).
    srv.stop();
    srv.set_config(&export_nine(&ex.join("sub")));
    srv.start();
    let before = disk_state(&ex);
    let mut c = tcp_as(&srv, USER, USER);
    if let Ok(data) = read_all(&mut c, &other_f) {
        panic!(
            "read {:?} outside the narrowed export through an old handle",
            String::from_utf8_lossy(&data)
        );
    }
    for (what, s) in [
        ("GETATTR", status_of(c.getattr(&other_f))),
        ("READ", status_of(c.read(&other_f, 0, 64))),
        (
            "WRITE",
            status_of(c.write(&other_f, 0, Bytes::from_static(b"X"), stable_how::FILE_SYNC)),
        ),
        (
            "SETATTR",
            status_of(c.setattr(&other_f, size_attr(0), None)),
        ),
        ("GETATTR of the old root", status_of(c.getattr(&root))),
        ("READ of X/sub/g", status_of(c.read(&sub_g, 0, 64))),
    ] {
        assert_eq!(
            s,
            nfsstat3::NFS3ERR_STALE,
            "{what} through an old handle of export 9"
        );
    }
    assert_unchanged("after calls through old handles", &ex, &before);
    // What the narrowed export serves is reached afresh.
    let sub = c
        .mount(ex.join("sub").to_str().unwrap().as_bytes())
        .unwrap();
    let g = fh_of(&mut c, &sub, "g");
    assert_eq!(read_all(&mut c, &g).unwrap(), b"sub's data");
    drop(c);

    // A plain restart with the same configuration keeps the new handles.
    srv.restart();
    let mut c = tcp_as(&srv, USER, USER);
    assert_eq!(read_all(&mut c, &g).unwrap(), b"sub's data");
}
