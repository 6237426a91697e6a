//! MOUNT versions 1 to 3 (RFC 1813 appendix I; version 1 per RFC 1094 appendix A): MNT hands out
//! an export's root handle to a client its rules admit; the rest lists exports and mounts.

use super::*;
use rnfs_mount as mount;

/// Mount entries kept for MOUNT DUMP; a bound keeps a client that mounts in a loop from growing it.
const MOUNT_LIST_ENTRIES_MAX: usize = 4096;

impl Service {
    pub(super) fn mount(&self, call: &Call, out: &mut BytesMut) -> Outcome {
        let xid = call.header.xid;
        let vers = call.header.vers;
        if !(1..=3).contains(&vers) {
            return reply_header(out, xid, ReplyHeader::ProgMismatch { low: 1, high: 3 });
        }
        let args = match mount::Args::decode(call.header.proc_num, call.args.clone()) {
            Ok(a) => a,
            Err(e) => return refuse_args(out, call, &e),
        };
        let host = call.peer.ip().to_string();
        let res = match args {
            mount::Args::Null => mount::Res::Null,
            mount::Args::Mnt(path) => {
                let res = self.mnt(call, &path);
                if vers < 3 {
                    // NFSv2 handles are 32 bytes and we serve only NFSv3: a v1/v2 client learns
                    // why from the log, and gets EACCES.
                    let status = match res {
                        mount::mountres3::Ok(_) => {
                            warn!(peer = %call.peer, "MOUNT v{vers} MNT refused: rnfsd serves NFSv3 only (use MOUNT v3)");
                            13
                        }
                        mount::mountres3::Fail(s) => s as u32,
                    };
                    return reply_success(out, xid, &mount::fhstatus::Fail(status));
                }
                mount::Res::Mnt(res)
            }
            mount::Args::Dump => mount::Res::Dump(mount::List(
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
            )),
            mount::Args::Umnt(path) => {
                let dir = String::from_utf8_lossy(path.as_bytes()).into_owned();
                let mut mounts = self.mounts.lock();
                mounts.retain(|(h, d)| !(h == &host && d == &dir));
                mount::Res::Umnt
            }
            mount::Args::Umntall => {
                let mut mounts = self.mounts.lock();
                mounts.retain(|(h, _)| h != &host);
                mount::Res::Umntall
            }
            mount::Args::Export => mount::Res::Export(self.export_list()),
        };
        reply_success(out, xid, &res)
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
        // walk is done as the caller, one component at a time, and never follows symlinks.
        let who = match &call.header.credential {
            Credential::Sys(sys) => rule.squash(sys.uid, sys.gid, &sys.gids),
            Credential::None => rule.anonymous(),
        };
        let mut fh = export.backend.root();
        for name in &below {
            // The backend's own root or LOOKUP result: verified as a client's handle would be.
            let found = export
                .verify(&fh)
                .and_then(|dir| export.backend.lookup(&who, &dir, name.as_bytes()));
            match found {
                Ok((next, attr)) if attr.file_type == rnfs_storage::FileType::Directory => {
                    fh = next
                }
                Ok(_) => return mount::mountres3::Fail(MNT3ERR_NOTDIR),
                Err(rnfs_storage::Error::NoEnt) => return mount::mountres3::Fail(MNT3ERR_NOENT),
                Err(rnfs_storage::Error::Access) => return mount::mountres3::Fail(MNT3ERR_ACCES),
                Err(rnfs_storage::Error::NotDir) => return mount::mountres3::Fail(MNT3ERR_NOTDIR),
                Err(rnfs_storage::Error::NameTooLong) => {
                    return mount::mountres3::Fail(MNT3ERR_NAMETOOLONG)
                }
                Err(e) => {
                    warn!(peer = %call.peer, path, error = %e, "MNT failed");
                    return mount::mountres3::Fail(MNT3ERR_IO);
                }
            }
        }
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
