//! What the status monitor (NSM, XNFS chapter 11) keeps on disk across restarts, in
//! `STATE_DIR/nsm/`: our state number (`state`, odd while up, advanced at every start) and one
//! file per client that has held a lock (`clients/HASH`, holding the client's key). After a
//! restart those clients are sent SM_NOTIFY, so they reclaim their locks during the grace
//! period; a record goes once its client has been told and has not locked anything since.
//!
//! Every call here blocks on the disk: call it from a worker thread or at start-up, never with a
//! lock held that another request needs.

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;

/// Client records read at start-up (a bound: a state directory filled by someone else must not
/// make us allocate without limit).
pub(crate) const CLIENT_RECORDS_MAX: usize = 100_000;
/// Largest client record accepted (an address and a caller_name of at most 1024 bytes).
const CLIENT_RECORD_BYTES_MAX: u64 = 2048;

/// The on-disk part of NSM.
pub(crate) struct NsmStore {
    clients_dir: PathBuf,
    /// Clients recorded by this process (their files exist); written once each.
    recorded: Mutex<HashSet<Bytes>>,
}

/// What [`NsmStore::open`] found.
pub(crate) struct Opened {
    pub store: NsmStore,
    /// Our new state number.
    pub state: i32,
    /// Clients that held locks before this start, to be notified.
    pub previous_clients: Vec<Bytes>,
}

impl NsmStore {
    /// Opens (creating) `state_dir/nsm`, advances the state number and lists the clients of the
    /// previous run.
    pub fn open(state_dir: &Path) -> io::Result<Opened> {
        let dir = state_dir.join("nsm");
        let clients_dir = dir.join("clients");
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(&clients_dir)?;
        let state = next_state(read_state(&dir.join("state")));
        write_atomically(&dir, "state", state.to_string().as_bytes())?;
        let previous_clients = read_clients(&clients_dir)?;
        Ok(Opened {
            store: NsmStore {
                clients_dir,
                recorded: Mutex::new(HashSet::new()),
            },
            state,
            previous_clients,
        })
    }

    fn recorded(&self) -> std::sync::MutexGuard<'_, HashSet<Bytes>> {
        // A set of keys: consistent between statements whatever panicked elsewhere.
        self.recorded
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `client` holds locks (once per process; later calls cost a set lookup).
    pub fn remember(&self, client: &Bytes) -> io::Result<()> {
        if self.recorded().contains(client) {
            return Ok(());
        }
        write_atomically(&self.clients_dir, &file_name(client), client)?;
        self.recorded().insert(client.clone());
        Ok(())
    }

    /// Drops the record of a client of the previous run once it has been notified, unless it
    /// has locked again since (then it is this run's client).
    pub fn notified(&self, client: &Bytes) -> io::Result<()> {
        if self.recorded().contains(client) {
            return Ok(());
        }
        match std::fs::remove_file(self.clients_dir.join(file_name(client))) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The next odd state number (RFC-less convention of every NSM: odd = up, even = down).
fn next_state(previous: i32) -> i32 {
    let next = previous.wrapping_add(1);
    if next % 2 == 0 {
        next.wrapping_add(1).max(1)
    } else {
        next.max(1)
    }
}

fn read_state(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn read_clients(dir: &Path) -> io::Result<Vec<Bytes>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_tmp = name.to_string_lossy().ends_with(".tmp");
        let meta = entry.metadata()?;
        if is_tmp || !meta.is_file() || meta.len() > CLIENT_RECORD_BYTES_MAX {
            continue;
        }
        if out.len() == CLIENT_RECORDS_MAX {
            tracing::warn!(dir = %dir.display(), "too many NSM client records: the rest are not notified");
            break;
        }
        out.push(Bytes::from(std::fs::read(entry.path())?));
    }
    Ok(out)
}

/// A client's record file name: a hash of its key (keys are arbitrary bytes).
fn file_name(client: &[u8]) -> String {
    blake3::hash(client).to_hex()[..32].to_owned()
}

/// Writes `dir/name` so that a crash leaves the old or the new contents, never a torn file.
fn write_atomically(dir: &Path, name: &str, data: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(data)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn state_numbers_stay_odd_and_advance() {
        assert_eq!(next_state(0), 1);
        assert_eq!(next_state(1), 3);
        assert_eq!(next_state(2), 3);
        assert_eq!(next_state(i32::MAX), 1);
    }

    #[test]
    fn clients_of_the_previous_run_are_listed_until_notified() {
        let dir = tempfile::tempdir().unwrap();
        let first = NsmStore::open(dir.path()).unwrap();
        assert_eq!((first.state, first.previous_clients.len()), (1, 0));
        let a = Bytes::from_static(b"127.0.0.1 host-a");
        let b = Bytes::from_static(b"127.0.0.2 host-b");
        first.store.remember(&a).unwrap();
        first.store.remember(&b).unwrap();
        first.store.remember(&a).unwrap();
        drop(first);
        let second = NsmStore::open(dir.path()).unwrap();
        assert_eq!(second.state, 3);
        let mut prev = second.previous_clients.clone();
        prev.sort();
        assert_eq!(prev, vec![a.clone(), b.clone()]);
        // a locks again before its notice is delivered: its record stays.
        second.store.remember(&a).unwrap();
        second.store.notified(&a).unwrap();
        second.store.notified(&b).unwrap();
        drop(second);
        let third = NsmStore::open(dir.path()).unwrap();
        assert_eq!(third.previous_clients, vec![a]);
        assert_eq!(third.state, 5);
    }
}
