//! Differential test against a brute-force model of POSIX record locks, and invariants of the
//! blocking machinery under random operations.
#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use rnfs_locks::{
    Bytes, Granted, Holder, Limits, LockKind, LockManager, LockOutcome, LockRequest, NoMirror,
    Range, Target, TestOutcome,
};

const OWNERS: usize = 4;
const FILES: usize = 2;
/// Cells 0..64 are bytes 0..64; cell 64 stands for every byte from 64 to end of file. Ranges
/// start and end on cell boundaries or at end of file, so one cell is exact.
const CELLS: usize = 65;

/// `(start, end)` in cells, `end == CELLS` meaning to end of file.
fn range_strategy() -> impl Strategy<Value = (usize, usize)> {
    (0..64usize).prop_flat_map(|start| (Just(start), start + 1..=CELLS))
}

fn to_range((start, end): (usize, usize)) -> Range {
    if end == CELLS {
        Range::to_eof(start as u64).unwrap()
    } else {
        Range::new(start as u64, end as u64).unwrap()
    }
}

fn kind_strategy() -> impl Strategy<Value = LockKind> {
    prop_oneof![Just(LockKind::Shared), Just(LockKind::Exclusive)]
}

#[derive(Clone, Debug)]
enum Op {
    Lock {
        owner: usize,
        file: usize,
        kind: LockKind,
        cells: (usize, usize),
    },
    Unlock {
        owner: usize,
        file: usize,
        cells: (usize, usize),
    },
    Test {
        owner: usize,
        file: usize,
        kind: LockKind,
        cells: (usize, usize),
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let owner = 0..OWNERS;
    let file = 0..FILES;
    prop_oneof![
        4 => (owner.clone(), file.clone(), kind_strategy(), range_strategy())
            .prop_map(|(owner, file, kind, cells)| Op::Lock { owner, file, kind, cells }),
        2 => (owner.clone(), file.clone(), range_strategy())
            .prop_map(|(owner, file, cells)| Op::Unlock { owner, file, cells }),
        1 => (owner, file, kind_strategy(), range_strategy())
            .prop_map(|(owner, file, kind, cells)| Op::Test { owner, file, kind, cells }),
    ]
}

/// Owner `o` belongs to client `o % 2`: two clients with two owners each.
fn target(owner: usize, file: usize) -> Target {
    Target {
        client: Bytes::from(format!("client{}", owner % 2)),
        owner: Bytes::from(format!("{owner}")),
        file: Bytes::from(format!("file{file}")),
    }
}

/// The model: who holds what, byte by byte.
#[derive(Clone)]
struct Model {
    cells: [[[Option<LockKind>; CELLS]; OWNERS]; FILES],
}

impl Default for Model {
    fn default() -> Self {
        Self {
            cells: [[[None; CELLS]; OWNERS]; FILES],
        }
    }
}

impl Model {
    fn conflicts(
        &self,
        owner: usize,
        file: usize,
        kind: LockKind,
        (s, e): (usize, usize),
    ) -> Vec<usize> {
        (0..OWNERS)
            .filter(|&o| o != owner)
            .filter(|&o| {
                self.cells[file][o][s..e]
                    .iter()
                    .flatten()
                    .any(|&held| kind.conflicts_with(held))
            })
            .collect()
    }

    fn set(&mut self, owner: usize, file: usize, value: Option<LockKind>, (s, e): (usize, usize)) {
        self.cells[file][owner][s..e].fill(value);
    }

    /// The canonical, merged ranges of every owner: runs of equal cells.
    fn held(&self) -> Vec<(usize, usize, u64, u64, LockKind)> {
        let mut out = Vec::new();
        for file in 0..FILES {
            for owner in 0..OWNERS {
                let row = &self.cells[file][owner];
                let mut c = 0;
                while c < CELLS {
                    let Some(kind) = row[c] else {
                        c += 1;
                        continue;
                    };
                    let start = c;
                    while c < CELLS && row[c] == Some(kind) {
                        c += 1;
                    }
                    out.push((file, owner, start as u64, to_range((start, c)).end(), kind));
                }
            }
        }
        out.sort();
        out
    }
}

fn index(key: &Bytes, prefix: &str) -> usize {
    std::str::from_utf8(key)
        .unwrap()
        .trim_start_matches(prefix)
        .parse()
        .unwrap()
}

fn manager_held(m: &LockManager) -> Vec<(usize, usize, u64, u64, LockKind)> {
    let mut out: Vec<_> = m
        .locks()
        .map(|l| {
            (
                index(l.file.1, "file"),
                index(l.owner.1, ""),
                l.range.start(),
                l.range.end(),
                l.kind,
            )
        })
        .collect();
    out.sort();
    out
}

fn owner_index(m: &LockManager, holder: Holder) -> usize {
    let Holder::Owner { owner, .. } = holder else {
        panic!("no mirror, so no external holder")
    };
    index(m.owner_key(owner).unwrap().1, "")
}

fn apply(m: &mut LockManager, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match *op {
        Op::Lock {
            owner,
            file,
            kind,
            cells,
        } => {
            let req = LockRequest {
                target: target(owner, file),
                kind,
                range: to_range(cells),
                block: false,
                reclaim: false,
            };
            let reply = m.lock(0, &req, &mut NoMirror);
            prop_assert!(reply.granted.is_empty());
            let expected = model.conflicts(owner, file, kind, cells);
            match reply.outcome {
                LockOutcome::Granted => {
                    prop_assert!(expected.is_empty(), "granted despite {expected:?}");
                    model.set(owner, file, Some(kind), cells);
                }
                LockOutcome::Denied(c) => {
                    prop_assert!(expected.contains(&owner_index(m, c.holder)));
                    prop_assert!(c.range.overlaps(to_range(cells)) && kind.conflicts_with(c.kind));
                }
                other => prop_assert!(false, "unexpected {other:?}"),
            }
        }
        Op::Unlock { owner, file, cells } => {
            let granted = m
                .unlock(0, &target(owner, file), to_range(cells), &mut NoMirror)
                .unwrap();
            prop_assert!(granted.is_empty());
            model.set(owner, file, None, cells);
        }
        Op::Test {
            owner,
            file,
            kind,
            cells,
        } => {
            let expected = model.conflicts(owner, file, kind, cells);
            match m.test(0, &target(owner, file), kind, to_range(cells)) {
                TestOutcome::Free => prop_assert!(expected.is_empty()),
                TestOutcome::Conflict(c) => {
                    prop_assert!(expected.contains(&owner_index(m, c.holder)))
                }
                TestOutcome::GracePeriod => prop_assert!(false, "no grace period"),
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Non-blocking LOCK, UNLOCK and TEST agree with the model, and the held ranges are exactly
    /// the model's, merged.
    #[test]
    fn matches_the_posix_model(ops in proptest::collection::vec(op_strategy(), 1..60)) {
        let mut m = LockManager::new(Limits::default()).unwrap();
        let mut model = Model::default();
        for op in &ops {
            apply(&mut m, &mut model, op)?;
            prop_assert_eq!(manager_held(&m), model.held(), "after {:?}", op);
            prop_assert_eq!(m.usage().locks, model.held().len());
        }
        for owner in 0..OWNERS {
            for file in 0..FILES {
                m.unlock(0, &target(owner, file), Range::to_eof(0).unwrap(), &mut NoMirror).unwrap();
            }
        }
        prop_assert_eq!(m.usage(), Default::default());
    }
}

#[derive(Clone, Debug)]
enum BlockingOp {
    Lock {
        owner: usize,
        file: usize,
        kind: LockKind,
        cells: (usize, usize),
        block: bool,
    },
    Unlock {
        owner: usize,
        file: usize,
        cells: (usize, usize),
    },
    Cancel {
        owner: usize,
        file: usize,
        kind: LockKind,
        cells: (usize, usize),
    },
    FreeOwner {
        owner: usize,
    },
    FreeClient {
        client: usize,
    },
}

fn blocking_op_strategy() -> impl Strategy<Value = BlockingOp> {
    let owner = 0..OWNERS;
    let file = 0..FILES;
    prop_oneof![
        6 => (owner.clone(), file.clone(), kind_strategy(), range_strategy(), any::<bool>())
            .prop_map(|(owner, file, kind, cells, block)| BlockingOp::Lock { owner, file, kind, cells, block }),
        3 => (owner.clone(), file.clone(), range_strategy())
            .prop_map(|(owner, file, cells)| BlockingOp::Unlock { owner, file, cells }),
        1 => (owner.clone(), file, kind_strategy(), range_strategy())
            .prop_map(|(owner, file, kind, cells)| BlockingOp::Cancel { owner, file, kind, cells }),
        1 => owner.prop_map(|owner| BlockingOp::FreeOwner { owner }),
        1 => (0..2usize).prop_map(|client| BlockingOp::FreeClient { client }),
    ]
}

fn run_blocking(m: &mut LockManager, op: &BlockingOp) -> Vec<Granted> {
    let mirror = &mut NoMirror;
    match *op {
        BlockingOp::Lock {
            owner,
            file,
            kind,
            cells,
            block,
        } => {
            let req = LockRequest {
                target: target(owner, file),
                kind,
                range: to_range(cells),
                block,
                reclaim: false,
            };
            m.lock(0, &req, mirror).granted
        }
        BlockingOp::Unlock { owner, file, cells } => m
            .unlock(0, &target(owner, file), to_range(cells), mirror)
            .unwrap(),
        BlockingOp::Cancel {
            owner,
            file,
            kind,
            cells,
        } => {
            m.cancel(&target(owner, file), kind, to_range(cells));
            Vec::new()
        }
        BlockingOp::FreeOwner { owner } => {
            let t = target(owner, 0);
            match m.owner_id(&t.client, &t.owner) {
                Some(id) => m.free_owner(0, id, mirror),
                None => Vec::new(),
            }
        }
        BlockingOp::FreeClient { client } => {
            match m.client_id(format!("client{client}").as_bytes()) {
                Some(id) => m.free_client(0, id, mirror),
                None => Vec::new(),
            }
        }
    }
}

/// No two owners hold conflicting overlapping locks; every waiter is still blocked by a holder;
/// every granted waiter's owner holds its range.
fn check_invariants(m: &LockManager, granted: &[Granted]) -> Result<(), TestCaseError> {
    let locks: Vec<_> = m.locks().collect();
    for a in &locks {
        for b in &locks {
            if a.file.0 == b.file.0 && a.owner.0 != b.owner.0 && a.range.overlaps(b.range) {
                prop_assert!(!a.kind.conflicts_with(b.kind), "{a:?} and {b:?} both held");
            }
        }
    }
    for w in m.waiters() {
        let blocked = locks.iter().any(|l| {
            l.file.0 == w.file.0
                && l.owner.0 != w.owner.0
                && l.range.overlaps(w.range)
                && l.kind.conflicts_with(w.kind)
        });
        prop_assert!(blocked, "waiter {w:?} could be granted");
    }
    for g in granted {
        prop_assert!(m.waiters().all(|w| w.waiter != g.waiter));
        let covered = locks
            .iter()
            .filter(|l| l.owner.0 == g.owner && l.file.0 == g.file && l.range.overlaps(g.range));
        let bytes: u64 = covered
            .map(|l| l.range.end().min(g.range.end()) - l.range.start().max(g.range.start()))
            .sum();
        prop_assert_eq!(
            bytes,
            g.range.end() - g.range.start(),
            "granted {:?} not held",
            g
        );
    }
    let usage = m.usage();
    prop_assert_eq!(usage.locks, locks.len());
    prop_assert_eq!(usage.waiters, m.waiters().count());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// With blocking LOCKs, CANCEL and frees mixed in, the invariants hold after every operation,
    /// and freeing everything leaves no state behind.
    #[test]
    fn blocking_keeps_the_invariants(ops in proptest::collection::vec(blocking_op_strategy(), 1..60)) {
        let mut m = LockManager::new(Limits::default()).unwrap();
        for op in &ops {
            let granted = run_blocking(&mut m, op);
            check_invariants(&m, &granted)?;
        }
        for client in 0..2 {
            if let Some(id) = m.client_id(format!("client{client}").as_bytes()) {
                m.free_client(0, id, &mut NoMirror);
            }
        }
        prop_assert_eq!(m.usage(), Default::default());
    }
}
