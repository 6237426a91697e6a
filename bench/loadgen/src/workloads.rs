//! Workload generators: what each benchmark sends and how it checks the replies.

use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};
use rnfs_nfs3::*;
use rnfs_xdr::{to_bytes, Decoder, Opaque};

use crate::engine::{Gen, OpError, Req};

/// xorshift64*: cheap, deterministic offsets.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn decode<T: XdrDecode>(res: Bytes, what: &str) -> Result<T, OpError> {
    let mut d = Decoder::new(res);
    T::decode(&mut d).map_err(|e| OpError::Failed(format!("{what}: undecodable reply: {e}")))
}

/// Maps a failing NFS status to "unsupported" (the server refuses the kind of operation) or a
/// failure.
pub fn status_error(what: &str, s: nfsstat3) -> OpError {
    match s {
        nfsstat3::NFS3ERR_ROFS | nfsstat3::NFS3ERR_NOTSUPP => {
            OpError::Unsupported(format!("{what}: {s:?}"))
        }
        _ => OpError::Failed(format!("{what}: {s:?}")),
    }
}

pub fn name(s: &str) -> filename3 {
    Opaque(Bytes::copy_from_slice(s.as_bytes()))
}

/// Offsets a workload visits.
pub enum Pattern {
    /// 0, bs, 2 bs, ... up to `size`.
    Seq { next: u64 },
    /// Uniformly random, `bs`-aligned, until the deadline.
    Rand { rng: Rng, deadline: Instant },
}

impl Pattern {
    pub fn next_offset(&mut self, size: u64, bs: u64) -> Option<u64> {
        match self {
            Pattern::Seq { next } => {
                if *next >= size {
                    return None;
                }
                let o = *next;
                *next += bs;
                Some(o)
            }
            Pattern::Rand { rng, deadline } => {
                if Instant::now() >= *deadline {
                    return None;
                }
                let blocks = (size / bs).max(1);
                Some((rng.next() % blocks) * bs)
            }
        }
    }
}

// ---- READ ----------------------------------------------------------------------------------

pub struct ReadGen {
    pub fh: nfs_fh3,
    pub size: u64,
    pub bs: u64,
    pub pattern: Pattern,
}

impl Gen for ReadGen {
    fn next(&mut self) -> Option<Req> {
        let off = self.pattern.next_offset(self.size, self.bs)?;
        let args = READ3args {
            file: self.fh.clone(),
            offset: off,
            count: self.bs as u32,
        };
        Some(Req {
            tag: off,
            proc: NFSPROC3_READ,
            args: vec![to_bytes(&args)],
        })
    }

    fn done(&mut self, off: u64, res: Bytes) -> Result<u64, OpError> {
        match decode::<READ3res>(res, "READ")? {
            READ3res::Ok(ok) => {
                let want = self.bs.min(self.size.saturating_sub(off));
                let got = ok.data.len() as u64;
                if got != want || ok.count as u64 != got {
                    return Err(OpError::Failed(format!(
                        "READ at {off}: {got} bytes (count {}), wanted {want}",
                        ok.count
                    )));
                }
                Ok(got)
            }
            READ3res::Fail(s, _) => Err(status_error("READ", s)),
        }
    }
}

// ---- WRITE ---------------------------------------------------------------------------------

pub struct WriteGen {
    pub fh: nfs_fh3,
    pub size: u64,
    pub bs: u64,
    pub pattern: Pattern,
    pub stable: stable_how,
    /// Payload source, at least `bs` bytes; every WRITE sends a zero-copy slice of it.
    pub data: Bytes,
    /// Set when any reply says the data is not yet on stable storage (COMMIT needed).
    pub uncommitted: bool,
}

impl WriteGen {
    /// WRITE3args up to and including the data length word; the payload follows as its own part.
    fn header(&self, off: u64, len: u32) -> Bytes {
        let mut b = BytesMut::with_capacity(96);
        self.fh.encode(&mut b);
        off.encode(&mut b);
        len.encode(&mut b);
        self.stable.encode(&mut b);
        b.put_u32(len);
        b.freeze()
    }
}

impl Gen for WriteGen {
    fn next(&mut self) -> Option<Req> {
        let off = self.pattern.next_offset(self.size, self.bs)?;
        let len = self.bs.min(self.size - off) as usize;
        let rot = ((off / self.bs) as usize * 4096) % (self.data.len() - len + 1);
        let mut args = vec![
            self.header(off, len as u32),
            self.data.slice(rot..rot + len),
        ];
        let pad = pad_len(len);
        if pad > 0 {
            args.push(Bytes::from(vec![0u8; pad]));
        }
        Some(Req {
            tag: len as u64,
            proc: NFSPROC3_WRITE,
            args,
        })
    }

    fn done(&mut self, len: u64, res: Bytes) -> Result<u64, OpError> {
        match decode::<WRITE3res>(res, "WRITE")? {
            WRITE3res::Ok(ok) => {
                if ok.count as u64 != len {
                    return Err(OpError::Failed(format!(
                        "short WRITE: {} of {len} bytes",
                        ok.count
                    )));
                }
                if ok.committed != stable_how::FILE_SYNC {
                    self.uncommitted = true;
                }
                Ok(len)
            }
            WRITE3res::Fail(s, _) => Err(status_error("WRITE", s)),
        }
    }
}

// ---- metadata ------------------------------------------------------------------------------

/// Which metadata operation a [`MetaGen`] sends, one per file.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum MetaOp {
    Create,
    Lookup,
    Getattr,
    Setattr,
    Remove,
}

impl MetaOp {
    pub fn label(self) -> &'static str {
        match self {
            MetaOp::Create => "create",
            MetaOp::Lookup => "lookup",
            MetaOp::Getattr => "getattr",
            MetaOp::Setattr => "setattr",
            MetaOp::Remove => "remove",
        }
    }
}

pub struct MetaGen {
    pub op: MetaOp,
    pub dir: nfs_fh3,
    pub names: Vec<String>,
    /// Handles by index: filled by Create and Lookup, used by Getattr and Setattr.
    pub fhs: Vec<Option<nfs_fh3>>,
    pub next: usize,
}

impl Gen for MetaGen {
    fn next(&mut self) -> Option<Req> {
        let i = self.next;
        if i >= self.names.len() {
            return None;
        }
        self.next += 1;
        let what = || diropargs3 {
            dir: self.dir.clone(),
            name: name(&self.names[i]),
        };
        let fh = || self.fhs[i].clone().unwrap_or_default();
        let (proc, args) = match self.op {
            MetaOp::Create => (
                NFSPROC3_CREATE,
                to_bytes(&CREATE3args {
                    r#where: what(),
                    how: createhow3::Guarded(sattr3 {
                        mode: Some(0o644),
                        ..Default::default()
                    }),
                }),
            ),
            MetaOp::Lookup => (NFSPROC3_LOOKUP, to_bytes(&LOOKUP3args { what: what() })),
            MetaOp::Getattr => (NFSPROC3_GETATTR, to_bytes(&GETATTR3args { object: fh() })),
            MetaOp::Setattr => (
                NFSPROC3_SETATTR,
                to_bytes(&SETATTR3args {
                    object: fh(),
                    new_attributes: sattr3 {
                        mode: Some(0o600),
                        mtime: set_mtime::SetToServerTime,
                        ..Default::default()
                    },
                    guard: None,
                }),
            ),
            MetaOp::Remove => (NFSPROC3_REMOVE, to_bytes(&REMOVE3args { object: what() })),
        };
        Some(Req {
            tag: i as u64,
            proc,
            args: vec![args],
        })
    }

    fn done(&mut self, tag: u64, res: Bytes) -> Result<u64, OpError> {
        let i = tag as usize;
        match self.op {
            MetaOp::Create => match decode::<CREATE3res>(res, "CREATE")? {
                CREATE3res::Ok(ok) => self.fhs[i] = ok.obj,
                CREATE3res::Fail(s, _) => return Err(status_error("CREATE", s)),
            },
            MetaOp::Lookup => match decode::<LOOKUP3res>(res, "LOOKUP")? {
                LOOKUP3res::Ok(ok) => self.fhs[i] = Some(ok.object),
                LOOKUP3res::Fail(s, _) => return Err(status_error("LOOKUP", s)),
            },
            MetaOp::Getattr => {
                if let GETATTR3res::Fail(s, _) = decode::<GETATTR3res>(res, "GETATTR")? {
                    return Err(status_error("GETATTR", s));
                }
            }
            MetaOp::Setattr => {
                if let SETATTR3res::Fail(s, _) = decode::<SETATTR3res>(res, "SETATTR")? {
                    return Err(status_error("SETATTR", s));
                }
            }
            MetaOp::Remove => {
                if let REMOVE3res::Fail(s, _) = decode::<REMOVE3res>(res, "REMOVE")? {
                    return Err(status_error("REMOVE", s));
                }
            }
        }
        Ok(0)
    }
}

// ---- READDIRPLUS ---------------------------------------------------------------------------

/// Lists a directory with READDIRPLUS pages until eof (one page in flight: each page's cookie
/// comes from the previous one).
pub struct ReaddirplusGen {
    pub dir: nfs_fh3,
    pub dircount: u32,
    pub maxcount: u32,
    pub cookie: cookie3,
    pub verf: cookieverf3,
    pub eof: bool,
    pub entries: u64,
    pub pages: u64,
    /// Entries without attributes or without a handle (an `ls -l` would need more calls).
    pub incomplete: u64,
    /// Keep handles (for the GETATTR workload's setup).
    pub keep: Option<Vec<(String, nfs_fh3)>>,
}

impl ReaddirplusGen {
    pub fn new(dir: nfs_fh3, dircount: u32, maxcount: u32) -> Self {
        ReaddirplusGen {
            dir,
            dircount,
            maxcount,
            cookie: 0,
            verf: [0; NFS3_COOKIEVERFSIZE],
            eof: false,
            entries: 0,
            pages: 0,
            incomplete: 0,
            keep: None,
        }
    }
}

impl Gen for ReaddirplusGen {
    fn next(&mut self) -> Option<Req> {
        if self.eof {
            return None;
        }
        Some(Req {
            tag: 0,
            proc: NFSPROC3_READDIRPLUS,
            args: vec![to_bytes(&READDIRPLUS3args {
                dir: self.dir.clone(),
                cookie: self.cookie,
                cookieverf: self.verf,
                dircount: self.dircount,
                maxcount: self.maxcount,
            })],
        })
    }

    fn done(&mut self, _: u64, res: Bytes) -> Result<u64, OpError> {
        let ok = match decode::<READDIRPLUS3res>(res, "READDIRPLUS")? {
            READDIRPLUS3res::Ok(ok) => ok,
            READDIRPLUS3res::Fail(s, _) => return Err(status_error("READDIRPLUS", s)),
        };
        self.pages += 1;
        self.verf = ok.cookieverf;
        self.eof = ok.reply.eof;
        match ok.reply.entries.last() {
            Some(last) => self.cookie = last.cookie,
            None if !self.eof => {
                return Err(OpError::Failed(
                    "READDIRPLUS page with no entries and no eof".into(),
                ))
            }
            None => {}
        }
        for e in ok.reply.entries {
            let n = e.name.as_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            self.entries += 1;
            if e.name_attributes.is_none() || e.name_handle.is_none() {
                self.incomplete += 1;
            }
            if let (Some(keep), Some(fh)) = (self.keep.as_mut(), e.name_handle) {
                keep.push((String::from_utf8_lossy(n).into_owned(), fh));
            }
        }
        Ok(0)
    }
}

pub fn commit_args(fh: &nfs_fh3) -> Bytes {
    to_bytes(&COMMIT3args {
        file: fh.clone(),
        offset: 0,
        count: 0,
    })
}

pub fn check_commit(res: Bytes) -> Result<(), OpError> {
    match decode::<COMMIT3res>(res, "COMMIT")? {
        COMMIT3res::Ok(_) => Ok(()),
        COMMIT3res::Fail(s, _) => Err(status_error("COMMIT", s)),
    }
}

// ---- the mix -------------------------------------------------------------------------------

/// The operations of [`MixGen`], with their share of the calls (percent).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum MixOp {
    Read4K,
    Read64K,
    Write4K,
    Getattr,
    Lookup,
    Setattr,
    Create,
    Remove,
    Readdirplus,
}

const MIX: [(MixOp, u64, &str); 9] = [
    (MixOp::Read4K, 30, "read_4k"),
    (MixOp::Read64K, 10, "read_64k"),
    (MixOp::Write4K, 15, "write_4k"),
    (MixOp::Getattr, 15, "getattr"),
    (MixOp::Lookup, 12, "lookup"),
    (MixOp::Setattr, 5, "setattr"),
    (MixOp::Create, 5, "create"),
    (MixOp::Remove, 5, "remove"),
    (MixOp::Readdirplus, 3, "readdirplus"),
];

/// What [`MixGen`] works on (set up untimed by the caller).
pub struct MixSetup {
    pub read_fh: nfs_fh3,
    pub read_size: u64,
    pub write_fh: nfs_fh3,
    pub write_size: u64,
    /// The listed directory, and names and handles of its entries.
    pub dir: nfs_fh3,
    pub entries: Vec<(String, nfs_fh3)>,
    /// Where files are created and removed.
    pub scratch: nfs_fh3,
    pub seed: u64,
    pub deadline: Instant,
}

/// A mixed workload, as many clients doing different things at once: each call is drawn from
/// [`MIX`] until the deadline. REMOVE takes a file an earlier CREATE made (a CREATE when there is
/// none), so the scratch directory stays small.
pub struct MixGen {
    s: MixSetup,
    rng: Rng,
    data: Bytes,
    /// Files created and not yet handed to a REMOVE, by number.
    created: std::collections::VecDeque<u64>,
    next_file: u64,
    counts: [u64; MIX.len()],
    pub uncommitted: bool,
}

impl MixGen {
    pub fn new(s: MixSetup) -> Self {
        let mut rng = Rng::new(s.seed);
        let data: Vec<u8> = (0..(128 << 10) / 8)
            .flat_map(|_| rng.next().to_le_bytes())
            .collect();
        MixGen {
            s,
            rng,
            data: Bytes::from(data),
            created: Default::default(),
            next_file: 0,
            counts: [0; MIX.len()],
            uncommitted: false,
        }
    }

    /// Completed calls per operation.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        MIX.iter()
            .zip(self.counts)
            .map(|((_, _, label), n)| (*label, n))
            .collect()
    }

    /// Names of files created and not removed.
    pub fn leftovers(&self) -> Vec<String> {
        self.created.iter().map(|n| Self::file_name(*n)).collect()
    }

    fn file_name(n: u64) -> String {
        format!("m{n:08}")
    }

    /// A random `bs`-aligned offset of a `size`-byte file (0 if it is smaller).
    fn offset(&mut self, size: u64, bs: u64) -> u64 {
        (self.rng.next() % (size / bs).max(1)) * bs
    }

    fn read(&mut self, bs: u64) -> (u32, Bytes, u64) {
        let off = self.offset(self.s.read_size, bs);
        let count = bs.min(self.s.read_size - off.min(self.s.read_size));
        let args = READ3args {
            file: self.s.read_fh.clone(),
            offset: off,
            count: count as u32,
        };
        (NFSPROC3_READ, to_bytes(&args), count)
    }
}

impl Gen for MixGen {
    fn next(&mut self) -> Option<Req> {
        if Instant::now() >= self.s.deadline {
            return None;
        }
        let mut pick = self.rng.next() % MIX.iter().map(|m| m.1).sum::<u64>();
        let mut kind = MIX.len() - 1;
        for (i, (_, share, _)) in MIX.iter().enumerate() {
            if pick < *share {
                kind = i;
                break;
            }
            pick -= share;
        }
        if MIX[kind].0 == MixOp::Remove && self.created.is_empty() {
            kind = MIX
                .iter()
                .position(|m| m.0 == MixOp::Create)
                .unwrap_or(kind);
        }
        let entry = (self.rng.next() % self.s.entries.len() as u64) as usize;
        let in_scratch = |name: String| diropargs3 {
            dir: self.s.scratch.clone(),
            name: crate::workloads::name(&name),
        };
        // `arg` rides in the tag: the expected byte count of a READ/WRITE, else a file number.
        let (proc, args, arg) = match MIX[kind].0 {
            MixOp::Read4K => {
                let (p, a, n) = self.read(4096);
                (p, vec![a], n)
            }
            MixOp::Read64K => {
                let (p, a, n) = self.read(64 << 10);
                (p, vec![a], n)
            }
            MixOp::Write4K => {
                let off = self.offset(self.s.write_size, 4096);
                let len = 4096.min(self.s.write_size - off.min(self.s.write_size));
                let rot = (off as usize) % (self.data.len() - 4096);
                let mut h = BytesMut::with_capacity(96);
                self.s.write_fh.encode(&mut h);
                off.encode(&mut h);
                (len as u32).encode(&mut h);
                stable_how::UNSTABLE.encode(&mut h);
                h.put_u32(len as u32);
                let payload = self.data.slice(rot..rot + len as usize);
                (NFSPROC3_WRITE, vec![h.freeze(), payload], len)
            }
            MixOp::Getattr => (
                NFSPROC3_GETATTR,
                vec![to_bytes(&GETATTR3args {
                    object: self.s.entries[entry].1.clone(),
                })],
                0,
            ),
            MixOp::Lookup => (
                NFSPROC3_LOOKUP,
                vec![to_bytes(&LOOKUP3args {
                    what: diropargs3 {
                        dir: self.s.dir.clone(),
                        name: name(&self.s.entries[entry].0),
                    },
                })],
                0,
            ),
            // Only the mtime: the entries are shared with other workloads.
            MixOp::Setattr => (
                NFSPROC3_SETATTR,
                vec![to_bytes(&SETATTR3args {
                    object: self.s.entries[entry].1.clone(),
                    new_attributes: sattr3 {
                        mtime: set_mtime::SetToServerTime,
                        ..Default::default()
                    },
                    guard: None,
                })],
                0,
            ),
            MixOp::Create => {
                let n = self.next_file;
                self.next_file += 1;
                let args = CREATE3args {
                    r#where: in_scratch(Self::file_name(n)),
                    how: createhow3::Guarded(sattr3 {
                        mode: Some(0o644),
                        ..Default::default()
                    }),
                };
                (NFSPROC3_CREATE, vec![to_bytes(&args)], n)
            }
            MixOp::Remove => {
                let n = self.created.pop_front().unwrap_or_default();
                let args = REMOVE3args {
                    object: in_scratch(Self::file_name(n)),
                };
                (NFSPROC3_REMOVE, vec![to_bytes(&args)], n)
            }
            MixOp::Readdirplus => (
                NFSPROC3_READDIRPLUS,
                vec![to_bytes(&READDIRPLUS3args {
                    dir: self.s.dir.clone(),
                    cookie: 0,
                    cookieverf: [0; NFS3_COOKIEVERFSIZE],
                    dircount: 8192,
                    maxcount: 32768,
                })],
                0,
            ),
        };
        Some(Req {
            tag: (arg << 8) | kind as u64,
            proc,
            args,
        })
    }

    fn done(&mut self, tag: u64, res: Bytes) -> Result<u64, OpError> {
        let (kind, arg) = ((tag & 0xff) as usize, tag >> 8);
        let op = MIX.get(kind).map(|m| m.0).ok_or_else(|| {
            OpError::Failed(format!("mix: a reply tagged with unknown operation {kind}"))
        })?;
        let bytes = match op {
            MixOp::Read4K | MixOp::Read64K => match decode::<READ3res>(res, "READ")? {
                READ3res::Ok(ok) if ok.data.len() as u64 == arg => arg,
                READ3res::Ok(ok) => {
                    return Err(OpError::Failed(format!(
                        "READ: {} bytes, wanted {arg}",
                        ok.data.len()
                    )))
                }
                READ3res::Fail(s, _) => return Err(status_error("READ", s)),
            },
            MixOp::Write4K => match decode::<WRITE3res>(res, "WRITE")? {
                WRITE3res::Ok(ok) if ok.count as u64 == arg => {
                    self.uncommitted |= ok.committed != stable_how::FILE_SYNC;
                    arg
                }
                WRITE3res::Ok(ok) => {
                    return Err(OpError::Failed(format!(
                        "short WRITE: {} of {arg} bytes",
                        ok.count
                    )))
                }
                WRITE3res::Fail(s, _) => return Err(status_error("WRITE", s)),
            },
            MixOp::Getattr => match decode::<GETATTR3res>(res, "GETATTR")? {
                GETATTR3res::Fail(s, _) => return Err(status_error("GETATTR", s)),
                _ => 0,
            },
            MixOp::Lookup => match decode::<LOOKUP3res>(res, "LOOKUP")? {
                LOOKUP3res::Fail(s, _) => return Err(status_error("LOOKUP", s)),
                _ => 0,
            },
            MixOp::Setattr => match decode::<SETATTR3res>(res, "SETATTR")? {
                SETATTR3res::Fail(s, _) => return Err(status_error("SETATTR", s)),
                _ => 0,
            },
            MixOp::Create => match decode::<CREATE3res>(res, "CREATE")? {
                CREATE3res::Fail(s, _) => return Err(status_error("CREATE", s)),
                _ => {
                    self.created.push_back(arg);
                    0
                }
            },
            MixOp::Remove => match decode::<REMOVE3res>(res, "REMOVE")? {
                REMOVE3res::Fail(s, _) => return Err(status_error("REMOVE", s)),
                _ => 0,
            },
            MixOp::Readdirplus => match decode::<READDIRPLUS3res>(res, "READDIRPLUS")? {
                READDIRPLUS3res::Ok(ok) if !ok.reply.entries.is_empty() => 0,
                READDIRPLUS3res::Ok(_) => {
                    return Err(OpError::Failed("READDIRPLUS: an empty first page".into()))
                }
                READDIRPLUS3res::Fail(s, _) => return Err(status_error("READDIRPLUS", s)),
            },
        };
        self.counts[kind] += 1;
        Ok(bytes)
    }
}
