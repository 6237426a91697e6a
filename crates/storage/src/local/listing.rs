//! Remembered directory listings: the names, inode numbers, cookies and file handles of a large
//! directory that has not changed, so that listing it again (`ls -l`, READDIRPLUS) costs one
//! `fstatat` per entry instead of `getdents64` + `name_to_handle_at` + `fstatat`.
//!
//! # Why
//! Profiled, READDIRPLUS of 50,000 entries spent 38 % of the server's CPU in `name_to_handle_at`
//! and 13 % in `getdents64`, both of which only re-derive what the previous listing of the same,
//! unchanged directory already found. Attributes change without the directory changing, so they
//! are never remembered: every entry is `fstatat`ed again, as the caller.
//!
//! # When a remembered listing may be used (the consistency rule)
//! A directory's entries change only by operations that also set its ctime (create, remove,
//! rename, link). A listing is remembered together with the directory's [`Stamp`] (inode, ctime,
//! mtime, size, link count) and is used only while the directory's stamp is the same, checked
//! at the start of every call. Two changes within one tick of the kernel's coarse clock can leave
//! the same ctime, so a listing is *started* only for a directory whose ctime is at least
//! [`SETTLE_MS`] older than the wall clock read before the directory was `fstat`ed: any later
//! change then gets a later ctime, and a listing read after that point is never mistaken for a
//! newer one (the "racy timestamp" rule of git's index). Every entry is checked once more when it
//! is served: `fstatat` must find the same inode on the same device, else the listing is dropped
//! and the call finishes from the directory itself. What remains outside the rule is a wall clock
//! stepped backwards onto the exact nanosecond of an earlier ctime.
//!
//! A listing is built by the ordinary calls of one READDIRPLUS pass (cookie 0 to eof, each call
//! continuing where the previous one stopped, all under the same stamp), never by reading ahead.
//! A pass given up before eof (the next pass starts from cookie 0 first: `ls | head`, clients
//! that read only the first page again and again, several clients opening a large directory)
//! leaves what it read as a *prefix*: calls within it are answered from memory, and a call that
//! reaches its end continues from the directory itself at the prefix's last cookie. A pass served
//! from a prefix records what it sends like any other, so it can still complete the listing.
//! Entries for which the pass got no handle (no search permission, a mount point) make the
//! listing unrememberable: what a caller may see must not depend on who listed first. `..` is
//! always looked up again (it is the one entry that changes when the directory moves).
//!
//! # Limits
//! At most [`LISTED_ENTRIES_MAX`] entries per export, remembered and being built together, packed
//! as one buffer of names and handles plus 24 bytes per entry (a 50,000-entry directory raised
//! the server's peak RSS by 3.7 MiB); the least recently used listings make room, and a directory
//! larger than the bound is simply not remembered. At most [`BUILDING_MAX`] passes are followed
//! at once. A listing unused for [`IDLE_ROUNDS`] housekeeping rounds (about 10 minutes) is
//! dropped.
//!
//! # Locking
//! One leaf lock (`Listings::state`), held for map operations only: no system call, no identity
//! switch, no other lock under it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use rnfs_sys::{Stat, TimeSpec};

use super::cache::Lru;
use crate::FileHandle;

/// Most entries remembered per export (all listings, complete or being built).
pub const LISTED_ENTRIES_MAX: usize = 131_072;
/// Most READDIRPLUS passes followed at once per export.
pub const BUILDING_MAX: usize = 8;
/// Housekeeping rounds (about 2 s each, so about 10 minutes) a listing may stay unused before it
/// is dropped. Long, because people list a directory again minutes later, not seconds; the memory
/// is bounded by [`LISTED_ENTRIES_MAX`] either way.
pub const IDLE_ROUNDS: u64 = 300;
/// How much older than the wall clock a directory's ctime must be before its listing is
/// remembered (many ticks of the coarse clock that stamps it).
pub const SETTLE_MS: u64 = 250;

/// What must not have changed for a remembered listing to be current.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    ctime: TimeSpec,
    mtime: TimeSpec,
    size: u64,
    nlink: u64,
}

impl Stamp {
    pub fn of(st: &Stat) -> Stamp {
        Stamp {
            dev: st.dev,
            ino: st.ino,
            ctime: st.ctime,
            mtime: st.mtime,
            size: st.size,
            nlink: st.nlink,
        }
    }

    /// True when the directory last changed at least [`SETTLE_MS`] before `now` (the wall clock
    /// read before the directory was `fstat`ed).
    pub fn settled(&self, now: std::time::SystemTime) -> bool {
        let Ok(now) = now.duration_since(std::time::UNIX_EPOCH) else {
            return false;
        };
        let settle = std::time::Duration::from_millis(SETTLE_MS);
        let Some(limit) = now.checked_sub(settle) else {
            return false;
        };
        let at = |t: TimeSpec| {
            u64::try_from(t.sec)
                .ok()
                .map(|s| std::time::Duration::new(s, t.nsec))
        };
        [self.ctime, self.mtime]
            .into_iter()
            .all(|t| at(t).is_some_and(|t| t < limit))
    }
}

/// One remembered entry, in the order `getdents64` gave it.
#[derive(Debug, Clone)]
pub struct Listed {
    /// `d_ino`: checked against `fstatat` when served.
    pub ino: u64,
    /// Without a NUL (see [`Listing::c_name`]).
    pub name: Bytes,
    /// `d_off`: the cookie of the position after this entry.
    pub cookie: u64,
    pub kind: ListedKind,
}

#[derive(Debug, Clone)]
pub enum ListedKind {
    /// `.`: described by the directory itself.
    Dot,
    /// `..`: looked up again each time.
    DotDot,
    /// Any other name, with the handle the pass found for it.
    Child(FileHandle),
}

/// The listing of one directory as it was at `stamp`, complete or a prefix of it (from the
/// first entry), packed: every name (followed by a NUL) and handle in one buffer, and 24 bytes of
/// fixed fields per entry.
#[derive(Debug)]
pub struct Listing {
    pub stamp: Stamp,
    /// False for a prefix: the directory has entries after the last one here.
    complete: bool,
    bytes: Bytes,
    slots: Vec<Slot>,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ino: u64,
    cookie: u64,
    /// Where the name starts in `bytes`; a NUL, then the handle if any, follow it.
    at: u32,
    /// Without the NUL.
    name_len: u16,
    /// 0 for `.` and `..`, which are described afresh.
    handle_len: u8,
    kind: SlotKind,
}

#[derive(Debug, Clone, Copy)]
enum SlotKind {
    Dot,
    DotDot,
    Child,
}

/// Entries packed as a pass records them: what becomes a [`Listing`].
#[derive(Debug, Default)]
struct Packed {
    bytes: Vec<u8>,
    slots: Vec<Slot>,
}

impl Packed {
    /// Appends `e`; false if it does not fit the packed form (never for real names and handles,
    /// which are at most 255 and 64 bytes, and names from `getdents64`, which hold no NUL).
    fn push(&mut self, e: Listed) -> bool {
        if e.name.contains(&0) {
            return false;
        }
        let (Ok(at), Ok(name_len)) = (u32::try_from(self.bytes.len()), u16::try_from(e.name.len()))
        else {
            return false;
        };
        let (kind, handle) = match &e.kind {
            ListedKind::Dot => (SlotKind::Dot, &[][..]),
            ListedKind::DotDot => (SlotKind::DotDot, &[][..]),
            ListedKind::Child(h) => (SlotKind::Child, h.as_bytes()),
        };
        let Ok(handle_len) = u8::try_from(handle.len()) else {
            return false;
        };
        self.bytes.extend_from_slice(&e.name);
        self.bytes.push(0);
        self.bytes.extend_from_slice(handle);
        self.slots.push(Slot {
            ino: e.ino,
            cookie: e.cookie,
            at,
            name_len,
            handle_len,
            kind,
        });
        true
    }

    fn last_cookie(&self) -> u64 {
        self.slots.last().map_or(0, |e| e.cookie)
    }

    fn into_listing(mut self, stamp: Stamp, complete: bool) -> Listing {
        self.bytes.shrink_to_fit();
        self.slots.shrink_to_fit();
        Listing {
            stamp,
            complete,
            bytes: Bytes::from(self.bytes),
            slots: self.slots,
        }
    }
}

impl Listing {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// False for a prefix (see the module docs).
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The cookie after the last entry (0 if there is none).
    pub fn last_cookie(&self) -> u64 {
        self.slots.last().map_or(0, |e| e.cookie)
    }

    /// Entry `i`'s name as a C string, for `fstatat`.
    pub fn c_name(&self, i: usize) -> Option<&std::ffi::CStr> {
        let s = self.slots.get(i)?;
        let at = s.at as usize;
        std::ffi::CStr::from_bytes_with_nul(self.bytes.get(at..=at + usize::from(s.name_len))?).ok()
    }

    /// Entry `i`, its name and handle sharing the listing's buffer.
    pub fn get(&self, i: usize) -> Option<Listed> {
        let s = self.slots.get(i)?;
        let at = s.at as usize;
        let name_end = at + usize::from(s.name_len);
        let handle_at = name_end + 1;
        let kind = match s.kind {
            SlotKind::Dot => ListedKind::Dot,
            SlotKind::DotDot => ListedKind::DotDot,
            // A handle this backend sealed, kept in the listing's buffer.
            SlotKind::Child => ListedKind::Child(FileHandle::from_wire(
                self.bytes
                    .slice(handle_at..handle_at + usize::from(s.handle_len)),
            )),
        };
        Some(Listed {
            ino: s.ino,
            name: self.bytes.slice(at..name_end),
            cookie: s.cookie,
            kind,
        })
    }

    /// Index of the entry a call with `cookie` starts at; `None` if no entry ends at `cookie`.
    pub fn position(&self, cookie: u64) -> Option<usize> {
        if cookie == 0 {
            return Some(0);
        }
        // Cookies strictly increase (checked while building).
        self.slots
            .binary_search_by_key(&cookie, |e| e.cookie)
            .ok()
            .map(|i| i + 1)
    }
}

/// A pass in progress: the entries sent so far.
#[derive(Debug)]
struct Building {
    stamp: Stamp,
    packed: Packed,
    /// The round in which it last grew.
    round: u64,
}

impl Building {
    fn next_cookie(&self) -> u64 {
        self.packed.last_cookie()
    }
}

#[derive(Debug, Default)]
struct State {
    done: Lru<Arc<Listing>>,
    done_entries: usize,
    building: HashMap<Vec<u8>, Building>,
    building_entries: usize,
    /// Housekeeping calls so far.
    calls: u64,
    /// Calls answered from a remembered listing.
    served: u64,
}

impl State {
    /// Drops the least recently used complete listings until `more` entries fit.
    fn make_room(&mut self, more: usize) -> bool {
        while self.done_entries + self.building_entries + more > LISTED_ENTRIES_MAX {
            match self.done.pop_oldest() {
                Some(l) => self.done_entries -= l.len(),
                None => return false,
            }
        }
        true
    }

    fn drop_building(&mut self, key: &[u8]) {
        if let Some(b) = self.building.remove(key) {
            self.building_entries -= b.packed.slots.len();
        }
    }

    fn forget_done(&mut self, key: &[u8]) {
        if let Some(l) = self.done.remove(key) {
            self.done_entries -= l.len();
        }
    }

    /// Starts a pass over `key` (none is in progress), making way if [`BUILDING_MAX`] are.
    fn start_building(&mut self, key: &[u8], stamp: Stamp) {
        if self.building.len() >= BUILDING_MAX {
            // The pass that grew longest ago gives way.
            let oldest = self
                .building
                .iter()
                .min_by_key(|(_, b)| b.round)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                self.drop_building(&k);
            }
        }
        self.building.insert(
            key.to_vec(),
            Building {
                stamp,
                packed: Packed::default(),
                round: self.calls,
            },
        );
    }

    /// Appends `batch`, the entries after `cookie`, to the pass over `key`; false if they cannot
    /// be (cookies not increasing, no room, an entry that does not pack), and the pass must end.
    fn extend_building(&mut self, key: &[u8], cookie: u64, batch: Vec<Listed>) -> bool {
        let mut last = if cookie == 0 { None } else { Some(cookie) };
        let increasing = batch.iter().all(|e| {
            let ok = last.is_none_or(|l| e.cookie > l);
            last = Some(e.cookie);
            ok
        });
        if !increasing || !self.make_room(batch.len()) {
            return false;
        }
        let round = self.calls;
        let Some(b) = self.building.get_mut(key) else {
            return false;
        };
        b.round = round;
        let before = b.packed.slots.len();
        let whole = batch.into_iter().all(|e| b.packed.push(e));
        let added = b.packed.slots.len() - before;
        self.building_entries += added;
        whole
    }

    /// Ends the pass over `key` at eof: what it read becomes the directory's complete listing.
    fn complete_building(&mut self, key: &[u8]) {
        let Some(b) = self.building.remove(key) else {
            return;
        };
        self.building_entries -= b.packed.slots.len();
        self.forget_done(key);
        let listing = b.packed.into_listing(b.stamp, true);
        self.done_entries += listing.len();
        let listing = Arc::new(listing);
        let mut evicted = Vec::new();
        self.done.insert_new(key, listing, usize::MAX, &mut evicted);
    }

    /// Ends the pass over `key`: what it read becomes the directory's prefix listing if it was
    /// read under `stamp` (the directory's now) and is longer than what is remembered under it.
    fn give_up_building(&mut self, key: &[u8], stamp: Stamp) {
        let Some(b) = self.building.remove(key) else {
            return;
        };
        let n = b.packed.slots.len();
        self.building_entries -= n;
        let known = self.done.touch(key).filter(|l| l.stamp == stamp).map(|l| {
            if l.complete {
                usize::MAX
            } else {
                l.len()
            }
        });
        if b.stamp != stamp || n == 0 || known.is_some_and(|k| k >= n) {
            return;
        }
        self.forget_done(key);
        self.done_entries += n;
        let prefix = Arc::new(b.packed.into_listing(b.stamp, false));
        let mut evicted = Vec::new();
        self.done.insert_new(key, prefix, usize::MAX, &mut evicted);
    }
}

/// The remembered listings of one export, keyed by the directory's handle body.
#[derive(Debug, Default)]
pub struct Listings {
    state: Mutex<State>,
}

impl Listings {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update leaves the maps and counts consistent before anything can panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The listing (complete or a prefix) of `dir` if it is current (`stamp` is the directory's
    /// now); a stale one is dropped.
    pub fn get(&self, dir: &[u8], stamp: &Stamp) -> Option<Arc<Listing>> {
        let mut s = self.lock();
        let listing = s.done.touch(dir)?;
        if listing.stamp == *stamp {
            return Some(listing);
        }
        s.forget_done(dir);
        None
    }

    /// Counts a call answered (wholly or in part) from a remembered listing.
    pub fn count_served(&self) {
        self.lock().served += 1;
    }

    /// Drops what is remembered of `dir` (a served entry did not match).
    pub fn forget(&self, dir: &[u8]) {
        let mut s = self.lock();
        s.forget_done(dir);
        s.drop_building(dir);
    }

    /// Records what one READDIRPLUS call sent: `batch`, the entries from `cookie` on, in order,
    /// `None` if one of them cannot be remembered. A call from cookie 0 of a settled directory
    /// starts a pass (a pass over the same directory given up before eof becomes its prefix); a
    /// call continuing a pass at its last cookie under the same stamp extends it; `eof` completes
    /// it. Anything else ends the pass.
    pub fn record(
        &self,
        dir: &[u8],
        stamp: Stamp,
        settled: bool,
        cookie: u64,
        batch: Option<Vec<Listed>>,
        eof: bool,
    ) {
        let mut s = self.lock();
        let continues = s
            .building
            .get(dir)
            .is_some_and(|b| b.stamp == stamp && b.next_cookie() == cookie);
        let Some(batch) = batch else {
            s.drop_building(dir);
            return;
        };
        if cookie == 0 {
            s.give_up_building(dir, stamp);
            if !settled {
                return;
            }
            s.start_building(dir, stamp);
        } else if !continues {
            s.drop_building(dir);
            return;
        }
        if !s.extend_building(dir, cookie, batch) {
            s.drop_building(dir);
            return;
        }
        if eof {
            s.complete_building(dir);
        }
    }

    /// Housekeeping: every [`IDLE_ROUNDS`] calls, drops the listings and passes not used since
    /// the previous such call.
    pub fn drop_idle(&self) -> Vec<Arc<Listing>> {
        let mut s = self.lock();
        s.calls += 1;
        if s.calls % IDLE_ROUNDS != 0 {
            return Vec::new();
        }
        let idle = s.done.close_idle();
        for l in &idle {
            s.done_entries -= l.len();
        }
        let oldest_kept = s.calls.saturating_sub(IDLE_ROUNDS);
        let stale: Vec<Vec<u8>> = s
            .building
            .iter()
            .filter(|(_, b)| b.round < oldest_kept)
            .map(|(k, _)| k.clone())
            .collect();
        for k in stale {
            s.drop_building(&k);
        }
        idle
    }

    /// What is remembered now, and how often it was used.
    pub fn stats(&self) -> ListingStats {
        let s = self.lock();
        ListingStats {
            listings: s.done.len(),
            entries: s.done_entries,
            calls_served: s.served,
        }
    }
}

/// See [`Listings::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingStats {
    /// Listings (complete or prefixes) remembered now.
    pub listings: usize,
    /// Their entries.
    pub entries: usize,
    /// READDIR(PLUS) calls answered from a remembered listing so far.
    pub calls_served: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ctime_sec: i64) -> Stamp {
        let t = TimeSpec {
            sec: ctime_sec,
            nsec: 0,
        };
        Stamp {
            dev: 1,
            ino: 2,
            ctime: t,
            mtime: t,
            size: 4096,
            nlink: 2,
        }
    }

    fn held(l: &Listings) -> (usize, usize) {
        let s = l.stats();
        (s.listings, s.entries)
    }

    fn entries(from: u64, n: u64) -> Vec<Listed> {
        (from..from + n)
            .map(|i| Listed {
                ino: 100 + i,
                name: Bytes::from(format!("f{i}")),
                cookie: (i + 1) * 10,
                kind: ListedKind::Child(FileHandle::from_wire(Bytes::from(format!("h{i}")))),
            })
            .collect()
    }

    #[test]
    fn a_pass_from_zero_to_eof_is_remembered_under_its_stamp() {
        let l = Listings::default();
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 3)), false);
        assert!(l.get(b"d", &stamp(1)).is_none(), "not complete yet");
        l.record(b"d", stamp(1), true, 30, Some(entries(3, 2)), true);
        let got = l.get(b"d", &stamp(1)).expect("complete");
        assert_eq!(got.len(), 5);
        let third = got.get(2).unwrap();
        assert_eq!(
            (third.ino, &third.name[..], third.cookie),
            (102, &b"f2"[..], 30)
        );
        assert!(matches!(third.kind, ListedKind::Child(h) if h.as_bytes() == b"h2"));
        assert_eq!(got.position(0), Some(0));
        assert_eq!(got.position(30), Some(3));
        assert_eq!(got.position(50), Some(5));
        assert_eq!(got.position(35), None);
        assert!(l.get(b"d", &stamp(2)).is_none(), "another stamp: stale");
        assert!(l.get(b"d", &stamp(1)).is_none(), "and dropped");
    }

    #[test]
    fn a_pass_given_up_leaves_a_prefix_that_a_later_pass_completes() {
        let l = Listings::default();
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 3)), false);
        // The next pass starts over: the first one's three entries become a prefix.
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 2)), false);
        let prefix = l.get(b"d", &stamp(1)).expect("a prefix");
        assert!(!prefix.is_complete());
        assert_eq!((prefix.len(), prefix.last_cookie()), (3, 30));
        assert_eq!(
            prefix.position(30),
            Some(3),
            "its end: read on from the directory"
        );
        // A shorter pass given up does not replace a longer prefix...
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 4)), false);
        assert_eq!(l.get(b"d", &stamp(1)).unwrap().len(), 2 + 1, "2 < 3: kept");
        // ...a longer one does.
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 1)), false);
        assert_eq!(l.get(b"d", &stamp(1)).unwrap().len(), 4);
        // Completing a pass replaces the prefix; a pass given up later never replaces it.
        l.record(b"d", stamp(1), true, 10, Some(entries(1, 4)), true);
        let whole = l.get(b"d", &stamp(1)).unwrap();
        assert!(whole.is_complete() && whole.len() == 5);
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 4)), false);
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 1)), false);
        assert!(l.get(b"d", &stamp(1)).unwrap().is_complete());
        // A pass read under another stamp leaves nothing.
        let m = Listings::default();
        m.record(b"d", stamp(1), true, 0, Some(entries(0, 3)), false);
        m.record(b"d", stamp(2), true, 0, Some(entries(0, 3)), false);
        assert!(m.get(b"d", &stamp(2)).is_none());
        assert!(m.get(b"d", &stamp(1)).is_none());
        let s = l.lock();
        assert_eq!(s.done_entries, 5);
        assert_eq!(s.building_entries, 1);
    }

    #[test]
    fn broken_passes_are_not_remembered() {
        let l = Listings::default();
        // Unsettled directory.
        l.record(b"d", stamp(1), false, 0, Some(entries(0, 3)), true);
        assert!(l.get(b"d", &stamp(1)).is_none());
        // The stamp changed between calls.
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 3)), false);
        l.record(b"d", stamp(2), true, 30, Some(entries(3, 2)), true);
        assert!(l.get(b"d", &stamp(2)).is_none());
        // A call that does not continue where the pass stopped.
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 3)), false);
        l.record(b"d", stamp(1), true, 20, Some(entries(2, 3)), true);
        assert!(l.get(b"d", &stamp(1)).is_none());
        // An entry that could not be remembered.
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 3)), false);
        l.record(b"d", stamp(1), true, 30, None, true);
        assert!(l.get(b"d", &stamp(1)).is_none());
        // Cookies that do not increase.
        let mut e = entries(0, 3);
        e[2].cookie = 5;
        l.record(b"d", stamp(1), true, 0, Some(e), true);
        assert!(l.get(b"d", &stamp(1)).is_none());
        assert_eq!(held(&l), (0, 0));
        assert_eq!(l.lock().building_entries, 0);
    }

    #[test]
    fn the_entry_bound_holds_and_evicts_least_recently_used() {
        let l = Listings::default();
        let half = LISTED_ENTRIES_MAX as u64 / 2;
        l.record(b"a", stamp(1), true, 0, Some(entries(0, half)), true);
        l.record(b"b", stamp(1), true, 0, Some(entries(0, half)), true);
        assert_eq!(held(&l), (2, LISTED_ENTRIES_MAX));
        assert!(l.get(b"a", &stamp(1)).is_some()); // "b" is now the least recently used
        l.record(b"c", stamp(1), true, 0, Some(entries(0, 10)), true);
        assert!(l.get(b"b", &stamp(1)).is_none());
        assert!(l.get(b"a", &stamp(1)).is_some());
        assert!(l.get(b"c", &stamp(1)).is_some());
        // Larger than the bound: never remembered.
        let all = LISTED_ENTRIES_MAX as u64 + 1;
        l.record(b"d", stamp(1), true, 0, Some(entries(0, all)), true);
        assert!(l.get(b"d", &stamp(1)).is_none());
        let s = l.lock();
        assert!(s.done_entries + s.building_entries <= LISTED_ENTRIES_MAX);
    }

    #[test]
    fn idle_listings_are_dropped() {
        let l = Listings::default();
        l.record(b"d", stamp(1), true, 0, Some(entries(0, 3)), true);
        for _ in 0..IDLE_ROUNDS {
            drop(l.drop_idle());
        }
        assert!(l.get(b"d", &stamp(1)).is_some(), "used in the first period");
        for _ in 0..2 * IDLE_ROUNDS {
            drop(l.drop_idle());
        }
        assert_eq!(held(&l), (0, 0));
    }

    #[test]
    fn settled_means_older_than_the_margin() {
        let now = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000);
        assert!(stamp(999).settled(now));
        let mut recent = stamp(999);
        recent.ctime.nsec = 900_000_000;
        assert!(!recent.settled(now));
        assert!(!stamp(2_000).settled(now), "from the future");
    }
}
