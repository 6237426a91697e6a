//! MOUNT versions 1 to 3 (RFC 1813 appendix I; version 1 per RFC 1094 appendix A): MNT hands out
//! an export's root handle to a client its rules admit; the rest lists exports and mounts. The
//! table [`MOUNT`] maps procedure numbers to the handlers here (see [`crate::program`]).

use super::*;
use crate::call::{reply_success, Call, Outcome, Reply};
use crate::program::{handler, null, Procedure, Program};
use rnfs_mount as mount;

/// Mount entries kept for MOUNT DUMP; a bound keeps a client that mounts in a loop from growing it.
const MOUNT_LIST_ENTRIES_MAX: usize = 4096;

/// MOUNT versions 1 to 3: the procedures are the same in each; MNT's result differs.
pub(crate) const MOUNT: Program = Program {
    prog: mount::MOUNT_PROG,
    name: "MOUNT",
    low: 1,
    high: 3,
    procedures: &[
        Procedure::new(mount::MOUNTPROC3_NULL, "NULL", handler!(null)),
        // MNT, UMNT and UMNTALL change the mount list, which a retransmission changes no further.
        // MNT alone replies with a status (mountstat3, or fhstatus's for v1).
        Procedure::new(
            mount::MOUNTPROC3_MNT,
            "MNT",
            handler!(into Service::mount_mnt),
        )
        .modifies()
        .status(),
        Procedure::new(
            mount::MOUNTPROC3_DUMP,
            "DUMP",
            handler!(Service::mount_dump),
        ),
        Procedure::new(
            mount::MOUNTPROC3_UMNT,
            "UMNT",
            handler!(Service::mount_umnt),
        )
        .modifies(),
        Procedure::new(
            mount::MOUNTPROC3_UMNTALL,
            "UMNTALL",
            handler!(Service::mount_umntall),
        )
        .modifies(),
        Procedure::new(
            mount::MOUNTPROC3_EXPORT,
            "EXPORT",
            handler!(Service::mount_export),
        ),
    ],
    stats_any_version: true,
    tcp_only: false,
};

impl Service {
    fn mount_mnt(
        &self,
        call: &Call,
        path: mount::dirpath,
        reply: &mut Reply,
    ) -> Result<Outcome, AuthStat> {
        let vers = call.header.vers;
        let res = self.mnt(call, &path);
        if vers < 3 {
            // NFSv2 handles are 32 bytes and we serve only NFSv3: a v1/v2 client learns why from
            // the log, and gets EACCES.
            let status = match res {
                mount::mountres3::Ok(_) => {
                    warn!(peer = %call.peer, "MOUNT v{vers} MNT refused: rnfsd serves NFSv3 only (use MOUNT v3)");
                    13
                }
                mount::mountres3::Fail(s) => s as u32,
            };
            let res = mount::fhstatus::Fail(status);
            return Ok(reply_success(&mut reply.head, call.header.xid, &res));
        }
        Ok(reply_success(&mut reply.head, call.header.xid, &res))
    }

    fn mount_dump(&self, _: &Call, (): ()) -> Result<mount::mountlist, AuthStat> {
        Ok(mount::List(
            self.mounts
                .lock()
                .iter()
                .filter_map(|(h, d)| {
                    Some(mount::mountbody {
                        ml_hostname: Opaque::new(h.clone().into_bytes())?,
                        ml_directory: Opaque::new(d.clone().into_bytes())?,
                    })
                })
                .collect(),
        ))
    }

    fn mount_umnt(&self, call: &Call, path: mount::dirpath) -> Result<(), AuthStat> {
        let host = call.peer.ip().to_string();
        let dir = String::from_utf8_lossy(path.as_bytes()).into_owned();
        let mut mounts = self.mounts.lock();
        mounts.retain(|(h, d)| !(h == &host && d == &dir));
        Ok(())
    }

    fn mount_umntall(&self, call: &Call, (): ()) -> Result<(), AuthStat> {
        let host = call.peer.ip().to_string();
        let mut mounts = self.mounts.lock();
        mounts.retain(|(h, _)| h != &host);
        Ok(())
    }

    fn mount_export(&self, _: &Call, (): ()) -> Result<mount::exports, AuthStat> {
        Ok(self.export_list())
    }

    fn mnt(&self, call: &Call, path: &mount::dirpath) -> mount::mountres3 {
        use mount::mountstat3::*;
        let Ok(path) = std::str::from_utf8(path.as_bytes()) else {
            return mount::mountres3::Fail(MNT3ERR_NOENT);
        };
        let table = self.exports();
        let Some((export, below)) = table.for_path(path) else {
            debug!(peer = %call.peer, path, "MNT of a path that is not exported");
            return mount::mountres3::Fail(MNT3ERR_NOENT);
        };
        let Some(rule) = export.rule_for(call.peer.ip()) else {
            warn!(peer = %call.peer, export = %export.mount_path, "MNT refused: no client rule matches");
            return mount::mountres3::Fail(MNT3ERR_ACCES);
        };
        if !rule.port_allowed(call.peer) {
            warn!(peer = %call.peer, export = %export.mount_path, "MNT refused: export requires a source port below 1024");
            return mount::mountres3::Fail(MNT3ERR_ACCES);
        }
        // A directory below the export may be mounted too (libnfs mounts a file's parent). The
        // walk is done as the caller, one component at a time.
        let who = match &call.header.credential {
            Credential::Sys(sys) => rule.squash(sys.uid, sys.gid, &sys.gids),
            Credential::None => rule.anonymous(),
        };
        let fh = match mnt_walk(export, &who, below) {
            Ok(fh) => fh,
            Err(Walk::Refused(why)) => {
                warn!(peer = %call.peer, path, why, "MNT refused");
                return mount::mountres3::Fail(MNT3ERR_ACCES);
            }
            Err(Walk::Failed(rnfs_storage::Error::NoEnt)) => {
                return mount::mountres3::Fail(MNT3ERR_NOENT)
            }
            Err(Walk::Failed(rnfs_storage::Error::Access)) => {
                return mount::mountres3::Fail(MNT3ERR_ACCES)
            }
            Err(Walk::Failed(rnfs_storage::Error::NotDir)) => {
                return mount::mountres3::Fail(MNT3ERR_NOTDIR)
            }
            Err(Walk::Failed(rnfs_storage::Error::NameTooLong)) => {
                return mount::mountres3::Fail(MNT3ERR_NAMETOOLONG)
            }
            Err(Walk::Failed(e)) => {
                warn!(peer = %call.peer, path, error = %e, "MNT failed");
                return mount::mountres3::Fail(MNT3ERR_IO);
            }
        };
        let Some(fhandle) = Opaque::new(fh.to_bytes()) else {
            return mount::mountres3::Fail(MNT3ERR_SERVERFAULT);
        };
        {
            let mut mounts = self.mounts.lock();
            let entry = (call.peer.ip().to_string(), normalize_mount_path(path));
            if !mounts.contains(&entry) && mounts.len() < MOUNT_LIST_ENTRIES_MAX {
                mounts.push(entry);
            }
        }
        debug!(peer = %call.peer, path, "mounted");
        mount::mountres3::Ok(mount::mountres3_ok {
            fhandle,
            auth_flavors: rnfs_xdr::Array(vec![
                rnfs_oncrpc::auth::AUTH_SYS as i32,
                rnfs_oncrpc::auth::AUTH_NONE as i32,
            ]),
        })
    }

    fn export_list(&self) -> mount::exports {
        let table = self.exports();
        mount::List(
            table
                .iter()
                .filter_map(|e| {
                    let groups = e
                        .rules
                        .iter()
                        .filter_map(|r| Opaque::new(r.matches.to_string().into_bytes()))
                        .collect();
                    Some(mount::exportnode {
                        ex_dir: Opaque::new(e.mount_path.clone().into_bytes())?,
                        ex_groups: mount::List(groups),
                    })
                })
                .collect(),
        )
    }
}

/// Symlinks one MNT follows before giving up (the kernel's own limit, ELOOP).
const MNT_SYMLINKS_MAX: usize = 40;

/// Why [`mnt_walk`] stopped.
#[derive(Debug)]
enum Walk {
    /// The backend's answer for a component.
    Failed(rnfs_storage::Error),
    /// The path leaves the export, or loops: refused as Linux's mountd refuses a path outside
    /// every export.
    Refused(&'static str),
}

/// The handle of the directory `below` names inside `export`, walked as `who`.
///
/// Symlinks are resolved as Linux's mountd does with `realpath`: a relative target continues
/// from the link's directory, an absolute one from the server's root, which must lead back
/// inside the export (through [`rnfs_storage::Backend::local_root`]). `..` is followed
/// lexically from the walked directories and may not rise above the export root.
fn mnt_walk(
    export: &Export,
    who: &rnfs_storage::Identity,
    below: Vec<String>,
) -> Result<FileHandle, Walk> {
    let backend = &export.backend;
    // The directories walked so far, root first: `..` pops one.
    let mut dirs = vec![backend.root()];
    let mut pending: std::collections::VecDeque<Vec<u8>> =
        below.into_iter().map(String::into_bytes).collect();
    let mut links = 0usize;
    while let Some(name) = pending.pop_front() {
        match name.as_slice() {
            b"" | b"." => continue,
            b".." => {
                if dirs.len() == 1 {
                    return Err(Walk::Refused("the path rises above the export root"));
                }
                dirs.pop();
                continue;
            }
            _ => {}
        }
        let dir = dirs.last().ok_or(Walk::Refused("no directory"))?;
        // The backend's own root or LOOKUP result: verified as a client's handle would be.
        let dir = export.verify(dir).map_err(Walk::Failed)?;
        let (next, attr) = backend.lookup(who, &dir, &name).map_err(Walk::Failed)?;
        match attr.file_type {
            rnfs_storage::FileType::Directory => dirs.push(next),
            rnfs_storage::FileType::Symlink => {
                links += 1;
                if links > MNT_SYMLINKS_MAX {
                    return Err(Walk::Refused("too many symbolic links"));
                }
                let link = export.verify(&next).map_err(Walk::Failed)?;
                let (target, _) = backend.readlink(who, &link).map_err(Walk::Failed)?;
                let relative = match target.strip_prefix(b"/") {
                    None => &target[..],
                    Some(_) => {
                        let root = backend.local_root();
                        let inside = root.as_deref().and_then(|r| below_root(r, &target));
                        let Some(inside) = inside else {
                            return Err(Walk::Refused("a symbolic link leads out of the export"));
                        };
                        dirs.truncate(1);
                        inside
                    }
                };
                for component in relative.rsplit(|b| *b == b'/') {
                    pending.push_front(component.to_vec());
                }
            }
            _ => return Err(Walk::Failed(rnfs_storage::Error::NotDir)),
        }
    }
    dirs.pop().ok_or(Walk::Refused("no directory"))
}

/// `path` relative to `root` when it names `root` or something below it, on component bounds.
fn below_root<'p>(root: &[u8], path: &'p [u8]) -> Option<&'p [u8]> {
    let root = root.strip_suffix(b"/").unwrap_or(root);
    let rest = path.strip_prefix(root)?;
    match rest.first() {
        None | Some(b'/') => Some(rest),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::below_root;

    #[test]
    fn absolute_targets_are_taken_only_below_the_root() {
        assert_eq!(below_root(b"/srv/data", b"/srv/data"), Some(&b""[..]));
        assert_eq!(
            below_root(b"/srv/data", b"/srv/data/a/b"),
            Some(&b"/a/b"[..])
        );
        assert_eq!(below_root(b"/srv/data/", b"/srv/data/a"), Some(&b"/a"[..]));
        assert_eq!(below_root(b"/srv/data", b"/srv/database"), None);
        assert_eq!(below_root(b"/srv/data", b"/srv"), None);
        assert_eq!(below_root(b"/", b"/etc"), Some(&b"/etc"[..]));
    }
}
