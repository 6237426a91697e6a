//! Byte ranges, lock kinds, and one owner's set of held ranges on one file.

use std::collections::BTreeMap;

/// A half-open byte range `[start, end)`; `end == u64::MAX` means "to end of file".
///
/// A range is never empty. Byte offset `u64::MAX` itself is not addressable: a range reaching it
/// is the same as a range to end of file, which is how both NLM4 and NFSv4 treat lengths that run
/// to the end of the 64-bit offset space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Range {
    start: u64,
    end: u64,
}

/// Why a range could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// `offset + len` does not fit in 64 bits, or the range starts at `u64::MAX` (NLM4_FBIG,
    /// NFS4ERR_INVAL).
    #[error("byte range overflows the 64-bit offset space")]
    Overflow,
    /// `start >= end`.
    #[error("empty byte range")]
    Empty,
}

impl Range {
    /// End value meaning "to end of file".
    pub const EOF: u64 = u64::MAX;

    /// `[start, end)`; fails when empty.
    pub fn new(start: u64, end: u64) -> Result<Self, RangeError> {
        if start >= end {
            return Err(RangeError::Empty);
        }
        Ok(Self { start, end })
    }

    /// `[start, EOF)`.
    pub fn to_eof(start: u64) -> Result<Self, RangeError> {
        if start == u64::MAX {
            return Err(RangeError::Overflow);
        }
        Ok(Self {
            start,
            end: Self::EOF,
        })
    }

    /// The wire form of NLM4 and NFSv4: `len == 0` (NLM) means to end of file. A length that runs
    /// past 2^64 is an error ([`RangeError::Overflow`]), not silently clipped, so the caller can
    /// answer NLM4_FBIG; a length that ends exactly at 2^64 - 1 is "to end of file". NFSv4
    /// callers map their all-ones length to `len = 0` before calling.
    pub fn from_offset_len(offset: u64, len: u64) -> Result<Self, RangeError> {
        if len == 0 {
            return Self::to_eof(offset);
        }
        let end = offset.checked_add(len).ok_or(RangeError::Overflow)?;
        Self::new(offset, end)
    }

    /// Back to the NLM4 wire form: `(offset, len)` with `len == 0` for "to end of file".
    pub fn to_offset_len(self) -> (u64, u64) {
        if self.is_to_eof() {
            (self.start, 0)
        } else {
            (self.start, self.end - self.start)
        }
    }

    /// First byte.
    pub fn start(self) -> u64 {
        self.start
    }

    /// One past the last byte, or [`Range::EOF`].
    pub fn end(self) -> u64 {
        self.end
    }

    /// Whether the range runs to end of file.
    pub fn is_to_eof(self) -> bool {
        self.end == Self::EOF
    }

    /// Whether the two ranges share at least one byte.
    pub fn overlaps(self, other: Range) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Shared (read) or exclusive (write) lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockKind {
    /// Many owners may hold overlapping shared locks (F_RDLCK, READ_LT).
    Shared,
    /// Conflicts with every other owner's overlapping lock (F_WRLCK, WRITE_LT).
    Exclusive,
}

impl LockKind {
    /// Two owners' overlapping locks conflict unless both are shared.
    pub fn conflicts_with(self, other: LockKind) -> bool {
        self == LockKind::Exclusive || other == LockKind::Exclusive
    }
}

/// One held range of one owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seg {
    pub end: u64,
    pub kind: LockKind,
    pub since_ms: u64,
}

/// One owner's locks on one file: disjoint, sorted, never two adjacent ranges of the same kind
/// (those are merged), keyed by start. Disjointness makes the ends sorted too, so the ranges
/// touching `[s, e)` are found by walking back from the last start below `e`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Segs {
    map: BTreeMap<u64, Seg>,
}

/// What a lock or unlock changes in a [`Segs`], computed before anything is changed so that the
/// limits and the mirror can refuse it (the change is then simply dropped).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Starts of the ranges to take out.
    remove: Vec<u64>,
    /// Ranges to put in after the removal.
    insert: Vec<(u64, Seg)>,
    /// The parts of held ranges that an unlock gives up (for the mirror's release).
    pub released: Vec<Range>,
}

impl Plan {
    /// How the number of held ranges changes when the plan is applied.
    pub fn delta(&self) -> isize {
        self.insert.len() as isize - self.remove.len() as isize
    }
}

impl Segs {
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Range, Seg)> + '_ {
        self.map.iter().map(|(&start, &seg)| {
            (
                Range {
                    start,
                    end: seg.end,
                },
                seg,
            )
        })
    }

    /// Held ranges with `start <= hi` and `end >= lo`, last first.
    fn touching(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, Seg)> + '_ {
        self.map
            .range(..=hi)
            .rev()
            .take_while(move |(_, seg)| seg.end >= lo)
            .map(|(&s, &g)| (s, g))
    }

    /// The held ranges that share a byte with `range`.
    pub fn overlapping(&self, range: Range) -> impl Iterator<Item = (Range, Seg)> + '_ {
        self.touching(range.start, range.end)
            .map(|(start, seg)| {
                (
                    Range {
                        start,
                        end: seg.end,
                    },
                    seg,
                )
            })
            .filter(move |(r, _)| r.overlaps(range))
    }

    /// Locking `range` as `kind`: POSIX replaces whatever the owner held there (an upgrade or a
    /// downgrade in place) and merges with same-kind neighbours that overlap or touch it.
    pub fn plan_lock(&self, range: Range, kind: LockKind, now_ms: u64) -> Plan {
        let mut plan = Plan::default();
        let mut pieces = vec![(
            range.start,
            Seg {
                end: range.end,
                kind,
                since_ms: now_ms,
            },
        )];
        for (start, seg) in self.touching(range.start, range.end) {
            plan.remove.push(start);
            pieces.extend(remnants(start, seg, range));
        }
        pieces.sort_by_key(|&(start, _)| start);
        plan.insert = merge_adjacent(pieces);
        plan
    }

    /// Unlocking `range`: cuts it out of the held ranges, splitting one that straddles it.
    pub fn plan_unlock(&self, range: Range) -> Plan {
        let mut plan = Plan::default();
        for (held, seg) in self.overlapping(range) {
            plan.remove.push(held.start);
            plan.insert.extend(remnants(held.start, seg, range));
            let cut_start = held.start.max(range.start);
            let cut_end = held.end.min(range.end);
            plan.released.push(Range {
                start: cut_start,
                end: cut_end,
            });
        }
        plan.released.reverse();
        plan
    }

    pub fn apply(&mut self, plan: &Plan) {
        for start in &plan.remove {
            self.map.remove(start);
        }
        for &(start, seg) in &plan.insert {
            self.map.insert(start, seg);
        }
    }
}

/// The parts of the held range `[start, seg.end)` outside `cut`.
fn remnants(start: u64, seg: Seg, cut: Range) -> impl Iterator<Item = (u64, Seg)> {
    let left = (start < cut.start).then(|| {
        (
            start,
            Seg {
                end: seg.end.min(cut.start),
                ..seg
            },
        )
    });
    let right = (seg.end > cut.end).then(|| (start.max(cut.end), seg));
    left.into_iter().chain(right)
}

/// Merges sorted, disjoint pieces that touch and have the same kind; a merged range is held since
/// the earliest of its pieces.
fn merge_adjacent(pieces: Vec<(u64, Seg)>) -> Vec<(u64, Seg)> {
    let mut out: Vec<(u64, Seg)> = Vec::with_capacity(pieces.len());
    for (start, seg) in pieces {
        match out.last_mut() {
            Some((_, prev)) if prev.end == start && prev.kind == seg.kind => {
                prev.end = seg.end;
                prev.since_ms = prev.since_ms.min(seg.since_ms);
            }
            _ => out.push((start, seg)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn r(s: u64, e: u64) -> Range {
        Range::new(s, e).unwrap()
    }

    fn lock(segs: &mut Segs, range: Range, kind: LockKind) -> isize {
        let plan = segs.plan_lock(range, kind, 0);
        segs.apply(&plan);
        plan.delta()
    }

    fn held(segs: &Segs) -> Vec<(u64, u64, LockKind)> {
        segs.iter()
            .map(|(r, s)| (r.start(), r.end(), s.kind))
            .collect()
    }

    use LockKind::{Exclusive as X, Shared as S};

    #[test]
    fn from_offset_len_handles_zero_max_and_overflow() {
        assert_eq!(Range::from_offset_len(0, 0).unwrap(), r(0, u64::MAX));
        assert!(Range::from_offset_len(7, 0).unwrap().is_to_eof());
        assert_eq!(Range::from_offset_len(10, 5).unwrap(), r(10, 15));
        assert_eq!(Range::from_offset_len(0, u64::MAX).unwrap(), r(0, u64::MAX));
        assert!(Range::from_offset_len(1, u64::MAX - 1).unwrap().is_to_eof());
        assert_eq!(
            Range::from_offset_len(1, u64::MAX),
            Err(RangeError::Overflow)
        );
        assert_eq!(
            Range::from_offset_len(u64::MAX, 1),
            Err(RangeError::Overflow)
        );
        assert_eq!(
            Range::from_offset_len(u64::MAX, 0),
            Err(RangeError::Overflow)
        );
        assert_eq!(
            Range::from_offset_len(u64::MAX - 1, 1).unwrap(),
            r(u64::MAX - 1, u64::MAX)
        );
        assert_eq!(Range::new(5, 5), Err(RangeError::Empty));
        assert_eq!(r(3, 9).to_offset_len(), (3, 6));
        assert_eq!(Range::to_eof(3).unwrap().to_offset_len(), (3, 0));
    }

    #[test]
    fn overlapping_same_kind_merges() {
        let mut s = Segs::default();
        lock(&mut s, r(0, 10), S);
        lock(&mut s, r(5, 20), S);
        assert_eq!(held(&s), vec![(0, 20, S)]);
    }

    #[test]
    fn adjacent_same_kind_merges_and_other_kind_does_not() {
        let mut s = Segs::default();
        lock(&mut s, r(0, 10), X);
        lock(&mut s, r(20, 30), X);
        assert_eq!(lock(&mut s, r(10, 20), X), -1);
        assert_eq!(held(&s), vec![(0, 30, X)]);
        lock(&mut s, r(30, 40), S);
        assert_eq!(held(&s), vec![(0, 30, X), (30, 40, S)]);
    }

    #[test]
    fn to_eof_swallows_later_ranges() {
        let mut s = Segs::default();
        lock(&mut s, r(10, 20), S);
        lock(&mut s, r(30, 40), S);
        lock(&mut s, Range::to_eof(15).unwrap(), S);
        assert_eq!(held(&s), vec![(10, u64::MAX, S)]);
    }

    #[test]
    fn downgrade_in_the_middle_splits_in_three() {
        let mut s = Segs::default();
        lock(&mut s, r(0, 30), X);
        assert_eq!(lock(&mut s, r(10, 20), S), 2);
        assert_eq!(held(&s), vec![(0, 10, X), (10, 20, S), (20, 30, X)]);
        // Upgrading back merges the three again.
        assert_eq!(lock(&mut s, r(10, 20), X), -2);
        assert_eq!(held(&s), vec![(0, 30, X)]);
    }

    #[test]
    fn unlock_splits_and_reports_what_it_released() {
        let mut s = Segs::default();
        lock(&mut s, r(0, 10), S);
        lock(&mut s, r(20, 30), X);
        let plan = s.plan_unlock(r(5, 25));
        assert_eq!(plan.released, vec![r(5, 10), r(20, 25)]);
        s.apply(&plan);
        assert_eq!(held(&s), vec![(0, 5, S), (25, 30, X)]);
        let plan = s.plan_unlock(r(1, 2));
        assert_eq!(plan.delta(), 1);
        s.apply(&plan);
        assert_eq!(held(&s), vec![(0, 1, S), (2, 5, S), (25, 30, X)]);
        s.apply(&s.plan_unlock(Range::to_eof(0).unwrap()));
        assert!(s.is_empty());
    }

    #[test]
    fn merged_range_keeps_the_earliest_since() {
        let mut s = Segs::default();
        s.apply(&s.plan_lock(r(0, 10), S, 5));
        s.apply(&s.plan_lock(r(10, 20), S, 9));
        assert_eq!(s.iter().next().unwrap().1.since_ms, 5);
    }
}
