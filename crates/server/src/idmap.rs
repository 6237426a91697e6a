//! NFSv4 `owner` and `owner_group` strings (RFC 8881 §5.9): user and group ids as the wire
//! shows them.
//!
//! * **Numeric** (the default, `nfs4_domain` unset): ids as decimal strings ("1000"), what Linux
//!   clients send and expect from an AUTH_SYS server by default.
//! * **Names** (`nfs4_domain = "example.com"`): `name@example.com` for every id the server's
//!   `/etc/passwd` or `/etc/group` names, the decimal string for the rest.
//!
//! Either way a client may send a decimal string or, with a domain, `name@domain` (the domain
//! compared case-insensitively); anything else — an unknown name, another domain — is
//! NFS4ERR_BADOWNER, so a SETATTR or CREATE never gives a file to somebody by accident.
//!
//! The files are read directly (no NSS: a worker thread must not block in a directory service),
//! bounded ([`FILE_BYTES_MAX`], [`ENTRIES_MAX`]), and read again when their mtime changes, looked
//! at no more often than every [`RECHECK_MS`].

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::lockdep::TrackedMutex;

/// Largest passwd or group file read (bytes).
pub const FILE_BYTES_MAX: u64 = 4 << 20;
/// Most names kept from one file.
pub const ENTRIES_MAX: usize = 65_536;
/// How often the files' mtimes are looked at, at most.
pub const RECHECK_MS: u64 = 5000;

/// Names of ids from one file (`name:x:id:...` lines).
#[derive(Default)]
struct Table {
    by_id: HashMap<u32, String>,
    by_name: HashMap<String, u32>,
    mtime: Option<SystemTime>,
}

impl Table {
    fn read(path: &Path) -> Table {
        let mut text = String::new();
        let meta = std::fs::metadata(path).ok();
        let ok = std::fs::File::open(path)
            .and_then(|f| f.take(FILE_BYTES_MAX).read_to_string(&mut text))
            .is_ok();
        let mut t = Table {
            mtime: meta.and_then(|m| m.modified().ok()),
            ..Table::default()
        };
        if !ok {
            return t;
        }
        for line in text.lines().take(ENTRIES_MAX) {
            let mut f = line.split(':');
            let (Some(name), Some(_), Some(id)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let Ok(id) = id.parse::<u32>() else { continue };
            if name.is_empty() || name.starts_with('#') || name.contains('@') {
                continue;
            }
            t.by_id.entry(id).or_insert_with(|| name.to_owned());
            t.by_name.entry(name.to_owned()).or_insert(id);
        }
        t
    }
}

struct Tables {
    users: Table,
    groups: Table,
    checked_ms: Option<u64>,
}

/// The id mapping of one server.
pub struct IdMap {
    /// `None`: numeric strings only.
    domain: Option<String>,
    passwd: PathBuf,
    group: PathBuf,
    /// A leaf lock held while the files are looked at (at most every [`RECHECK_MS`]) or read.
    tables: TrackedMutex<Tables>,
}

/// Which kind of id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    User,
    Group,
}

impl IdMap {
    /// Numeric strings only.
    pub fn numeric() -> IdMap {
        IdMap::new(None, "/etc/passwd".into(), "/etc/group".into())
    }

    /// Names `name@domain` from these files (numeric strings when `domain` is `None`).
    pub fn new(domain: Option<String>, passwd: PathBuf, group: PathBuf) -> IdMap {
        IdMap {
            domain: domain.map(|d| d.to_ascii_lowercase()),
            passwd,
            group,
            tables: TrackedMutex::new(
                "nfs4.idmap",
                Tables {
                    users: Table::default(),
                    groups: Table::default(),
                    checked_ms: None,
                },
            ),
        }
    }

    fn with<R>(&self, now_ms: u64, f: impl FnOnce(&Tables) -> R) -> R {
        let mut t = self.tables.lock();
        let due = t
            .checked_ms
            .is_none_or(|c| now_ms.saturating_sub(c) >= RECHECK_MS);
        if due {
            t.checked_ms = Some(now_ms);
            let mtime = |p: &Path| std::fs::metadata(p).ok().and_then(|m| m.modified().ok());
            if t.users.mtime.is_none() || mtime(&self.passwd) != t.users.mtime {
                t.users = Table::read(&self.passwd);
            }
            if t.groups.mtime.is_none() || mtime(&self.group) != t.groups.mtime {
                t.groups = Table::read(&self.group);
            }
        }
        f(&t)
    }

    pub fn lock_info(&self) -> crate::lockdep::LockInfo {
        self.tables.info()
    }

    /// The string for `id`.
    pub fn name_of(&self, now_ms: u64, kind: Kind, id: u32) -> String {
        let Some(domain) = &self.domain else {
            return id.to_string();
        };
        self.with(now_ms, |t| {
            let table = match kind {
                Kind::User => &t.users,
                Kind::Group => &t.groups,
            };
            match table.by_id.get(&id) {
                Some(name) => format!("{name}@{domain}"),
                None => id.to_string(),
            }
        })
    }

    /// The id a client's string names, or `None` (NFS4ERR_BADOWNER).
    pub fn id_of(&self, now_ms: u64, kind: Kind, s: &[u8]) -> Option<u32> {
        let s = std::str::from_utf8(s).ok()?;
        if !s.is_empty() && s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()) {
            return s.parse().ok();
        }
        let domain = self.domain.as_ref()?;
        let (name, d) = s.rsplit_once('@')?;
        if !d.eq_ignore_ascii_case(domain) {
            return None;
        }
        self.with(now_ms, |t| {
            let table = match kind {
                Kind::User => &t.users,
                Kind::Group => &t.groups,
            };
            table.by_name.get(name).copied()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        std::fs::write(&passwd, "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbad line\nbob:x:notanumber:1\n").expect("passwd");
        std::fs::write(&group, "root:x:0:\nstaff:x:50:alice\n").expect("group");
        (dir, passwd, group)
    }

    #[test]
    fn numeric_by_default_names_with_a_domain() {
        let (_d, passwd, group) = files();
        let numeric = IdMap::new(None, passwd.clone(), group.clone());
        assert_eq!(numeric.name_of(0, Kind::User, 1000), "1000");
        assert_eq!(numeric.id_of(0, Kind::User, b"1000"), Some(1000));
        assert_eq!(numeric.id_of(0, Kind::User, b"alice@example.com"), None);
        let names = IdMap::new(Some("Example.COM".into()), passwd, group);
        assert_eq!(names.name_of(0, Kind::User, 1000), "alice@example.com");
        assert_eq!(names.name_of(0, Kind::Group, 50), "staff@example.com");
        // An id nobody names stays numeric.
        assert_eq!(names.name_of(0, Kind::User, 4242), "4242");
        assert_eq!(names.id_of(0, Kind::User, b"alice@EXAMPLE.com"), Some(1000));
        assert_eq!(names.id_of(0, Kind::Group, b"staff@example.com"), Some(50));
        assert_eq!(names.id_of(0, Kind::User, b"7"), Some(7));
        for bad in [
            &b"mallory@example.com"[..],
            b"alice@other.org",
            b"alice",
            b"",
            b"99999999999",
            b"-1",
            b"bob@example.com",
            b"\xff",
        ] {
            assert_eq!(names.id_of(0, Kind::User, bad), None, "{bad:?}");
        }
    }

    #[test]
    fn changed_files_are_read_again() {
        let (_d, passwd, group) = files();
        let names = IdMap::new(Some("example.com".into()), passwd.clone(), group);
        assert_eq!(names.id_of(0, Kind::User, b"carol@example.com"), None);
        std::fs::write(&passwd, "carol:x:1001:1001::/:/bin/sh\n").expect("passwd");
        // Files are looked at again only after RECHECK_MS (mtime granularity permitting).
        let t = filetime_bump(&passwd);
        assert!(t);
        assert_eq!(
            names.id_of(RECHECK_MS, Kind::User, b"carol@example.com"),
            Some(1001)
        );
    }

    /// Moves the file's mtime a second forward, so a rewrite within the same clock tick shows.
    fn filetime_bump(p: &Path) -> bool {
        let m = std::fs::metadata(p)
            .expect("metadata")
            .modified()
            .expect("mtime");
        let f = std::fs::File::options().write(true).open(p).expect("open");
        f.set_modified(m + std::time::Duration::from_secs(1))
            .is_ok()
    }
}
