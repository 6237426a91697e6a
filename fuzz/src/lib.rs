//! Shared pieces of rnfsd's fuzz targets: sample types, the per-program check, and the seeds.
//!
//! The fuzz targets live in `fuzz_targets/`; `src/bin/gen_corpus.rs` writes the seed corpus into
//! `corpus/<target>/` from [`seeds`], after checking that every seed decodes.
//!
//! The seeds are written here as raw wire bytes (RFC 1813 / 1833 / 5531), not with the crates'
//! encoders, so they do not depend on type names that are still moving and they double as an
//! independent check of the decoders (see [`check_seeds`]).

pub mod xdr_sample {
    use rnfs_xdr::{Array, Opaque};

    rnfs_xdr::xdr_enum! {
        /// An enum with sparse and negative discriminants.
        pub enum Color { Red = 0, Green = 7, Blue = -3 }
    }

    rnfs_xdr::xdr_struct! {
        /// One of everything the XDR crate can decode.
        #[derive(Debug, Clone, PartialEq)]
        pub struct Sample {
            pub a: u32,
            pub b: i64,
            pub c: bool,
            pub name: Opaque<16>,
            pub opt: Option<u32>,
            pub fixed: [u8; 5],
            pub arr: Array<u32, 8>,
            pub color: Color,
            pub big: u64,
        }
    }
}

/// The body of a fuzz target for one RPC program crate (`rnfs_portmap`, `rnfs_mount`, `rnfs_nfs3`),
/// which all expose `Args::decode(procedure, bytes)`, `Res::decode(procedure, bytes)`,
/// `procedure()`, `XdrEncode` and `ArgsError::{ProcUnavail, GarbageArgs}`.
///
/// Input: byte 0 = `0x80` bit set for results (client side) / clear for arguments (server side),
/// low 7 bits modulo `procedures + 2` = the procedure (so two invalid numbers are tried too); the
/// rest = the XDR bytes. Checks: no panic; an unknown procedure gives exactly `ProcUnavail(p)` and a
/// known one never does; a successful decode re-encodes to exactly the input (the decoders are
/// strict: one encoding per value), with a matching `encoded_len` and `procedure()`.
#[macro_export]
macro_rules! program_fuzz_target {
    ($krate:ident, $procedures:expr) => {
        libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            let Some((&sel, rest)) = data.split_first() else {
                return;
            };
            let procedures: u32 = $procedures;
            let procedure = u32::from(sel & 0x7f) % (procedures + 2);
            let bytes = bytes::Bytes::copy_from_slice(rest);
            if sel & 0x80 == 0 {
                $crate::check_decode!(
                    $krate::Args::decode(procedure, bytes.clone()),
                    $krate,
                    procedure,
                    procedures,
                    bytes
                );
            } else {
                $crate::check_decode!(
                    $krate::Res::decode(procedure, bytes.clone()),
                    $krate,
                    procedure,
                    procedures,
                    bytes
                );
            }
        });
    };
}

/// See [`program_fuzz_target`].
#[macro_export]
macro_rules! check_decode {
    ($result:expr, $krate:ident, $procedure:ident, $procedures:ident, $bytes:ident) => {
        match $result {
            Ok(v) => {
                assert!(
                    $procedure < $procedures,
                    "decoded unknown procedure {}",
                    $procedure
                );
                assert_eq!(v.procedure(), $procedure, "decoded as another procedure");
                let again = rnfs_xdr::to_bytes(&v);
                assert_eq!(
                    again.len(),
                    rnfs_xdr::XdrEncode::encoded_len(&v),
                    "encoded_len disagrees with encode for {v:?}"
                );
                assert_eq!(again, $bytes, "decode/encode is not the identity for {v:?}");
            }
            Err($krate::ArgsError::ProcUnavail(p)) => {
                assert_eq!(p, $procedure);
                assert!(
                    $procedure >= $procedures,
                    "known procedure {p} reported unavailable"
                );
            }
            Err(_) => assert!(
                $procedure < $procedures,
                "unknown procedure not ProcUnavail"
            ),
        }
    };
}

/// Procedures per program (highest procedure number + 1).
pub const PORTMAP_PROCEDURES: u32 = 6;
pub const MOUNT_PROCEDURES: u32 = 6;
pub const NFS3_PROCEDURES: u32 = 22;

/// A tiny XDR writer for the seeds.
#[derive(Default)]
pub struct W(pub Vec<u8>);

impl W {
    pub fn new() -> Self {
        W(Vec::new())
    }
    pub fn u32(mut self, v: u32) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn u64(mut self, v: u64) -> Self {
        self.0.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn fixed(mut self, data: &[u8]) -> Self {
        self.0.extend_from_slice(data);
        self.0.resize(self.0.len() + (4 - data.len() % 4) % 4, 0);
        self
    }
    pub fn opaque(self, data: &[u8]) -> Self {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        self.u32(len).fixed(data)
    }
    pub fn raw(mut self, data: &[u8]) -> Self {
        self.0.extend_from_slice(data);
        self
    }
    pub fn done(self) -> Vec<u8> {
        self.0
    }
}

/// A seed: file name, and the bytes (selector byte included).
pub type Seed = (String, Vec<u8>);

/// Seed inputs per fuzz target. Small, valid messages, so the fuzzer starts past the first checks.
pub fn seeds() -> Vec<(&'static str, Vec<Seed>)> {
    vec![
        ("xdr", xdr_seeds()),
        ("oncrpc", oncrpc_seeds()),
        ("portmap", portmap_seeds()),
        ("mount", mount_seeds()),
        ("nfs3", nfs3_seeds()),
    ]
}

fn xdr_seeds() -> Vec<Seed> {
    use bytes::Bytes;
    use rnfs_xdr::{to_bytes, Array, Opaque};
    use xdr_sample::{Color, Sample};

    let sample = Sample {
        a: 7,
        b: -2,
        c: true,
        name: Opaque(Bytes::from_static(b"hello")),
        opt: Some(42),
        fixed: *b"abcde",
        arr: Array(vec![1, 2, 3]),
        color: Color::Blue,
        big: u64::MAX,
    };
    let empty = Sample {
        a: 0,
        b: 0,
        c: false,
        name: Opaque(Bytes::new()),
        opt: None,
        fixed: [0; 5],
        arr: Array(Vec::new()),
        color: Color::Red,
        big: 0,
    };
    let mut out = Vec::new();
    // Mode byte 0 = whole-struct round trip.
    for (name, s) in [("struct-full", &sample), ("struct-empty", &empty)] {
        let mut v = vec![0u8];
        v.extend_from_slice(&to_bytes(s));
        out.push((name.to_string(), v));
    }
    // Mode byte 31 = a script of 16 ops: every op once, then a message satisfying the first ones.
    let ops: Vec<u8> = (0u8..16).map(|op| op | 0x30).collect();
    let mut v = vec![31u8];
    v.extend_from_slice(&ops);
    v.extend(
        W::new()
            .u32(5)
            .u32((-5i32) as u32)
            .u64(1)
            .u64(u64::MAX)
            .u32(1)
            .fixed(b"xyz")
            .opaque(b"ok")
            .opaque(b"abc")
            .done(),
    );
    out.push(("script-all-ops".to_string(), v));
    out
}

/// AUTH_SYS credential body: stamp, machine name, uid, gid, gids.
fn auth_sys_body(uid: u32, gid: u32, gids: &[u32]) -> Vec<u8> {
    let mut w = W::new().u32(0x1234).opaque(b"fuzzhost").u32(uid).u32(gid);
    w = w.u32(u32::try_from(gids.len()).unwrap_or(0));
    for g in gids {
        w = w.u32(*g);
    }
    w.done()
}

/// An RPC call record (no record mark).
pub fn call(
    xid: u32,
    prog: u32,
    vers: u32,
    proc_num: u32,
    auth_sys: Option<u32>,
    args: &[u8],
) -> Vec<u8> {
    let w = W::new()
        .u32(xid)
        .u32(0)
        .u32(2)
        .u32(prog)
        .u32(vers)
        .u32(proc_num);
    let w = match auth_sys {
        Some(uid) => w.u32(1).opaque(&auth_sys_body(uid, uid, &[uid, 4, 24])),
        None => w.u32(0).opaque(b""),
    };
    w.u32(0).opaque(b"").raw(args).done()
}

/// A record-marked stream of `records`, each split into fragments of at most `frag` bytes.
pub fn marked(records: &[Vec<u8>], frag: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        let chunks: Vec<&[u8]> = if r.is_empty() {
            vec![&r[..]]
        } else {
            r.chunks(frag.max(1)).collect()
        };
        for (i, c) in chunks.iter().enumerate() {
            let last = if i + 1 == chunks.len() {
                0x8000_0000
            } else {
                0
            };
            let len = u32::try_from(c.len()).unwrap_or(0);
            out.extend_from_slice(&(last | len).to_be_bytes());
            out.extend_from_slice(c);
        }
    }
    out
}

/// The oncrpc target's 3-byte prefix: fragment limit, record-size limit, feed chunk size.
pub const ONCRPC_PREFIX: [u8; 3] = [8, 7, 16];

fn oncrpc_seeds() -> Vec<Seed> {
    let fh = W::new().opaque(&[0xab; 32]).done();
    let null = call(1, 100_003, 3, 0, None, &[]);
    let getattr = call(2, 100_003, 3, 1, Some(1000), &fh);
    let mnt = call(
        3,
        100_005,
        3,
        1,
        Some(0),
        &W::new().opaque(b"/srv/export").done(),
    );
    let getport = call(
        4,
        100_000,
        2,
        3,
        None,
        &W::new().u32(100_003).u32(3).u32(6).u32(0).done(),
    );
    let reply = W::new()
        .u32(2)
        .u32(1)
        .u32(0)
        .u32(0)
        .opaque(b"")
        .u32(0)
        .u32(0)
        .done();
    let with = |records: &[Vec<u8>], frag: usize| {
        let mut v = ONCRPC_PREFIX.to_vec();
        v.extend(marked(records, frag));
        v
    };
    vec![
        (
            "null-call".into(),
            with(std::slice::from_ref(&null), 1 << 20),
        ),
        (
            "getattr-authsys".into(),
            with(std::slice::from_ref(&getattr), 1 << 20),
        ),
        (
            "three-calls-fragmented".into(),
            with(&[mnt, getport, getattr], 12),
        ),
        ("reply".into(), with(&[reply, null], 1 << 20)),
    ]
}

fn sel(procedure: u32, res: bool, body: Vec<u8>) -> Vec<u8> {
    let mut v = vec![u8::try_from(procedure).unwrap_or(0x7f) | if res { 0x80 } else { 0 }];
    v.extend(body);
    v
}

fn portmap_seeds() -> Vec<Seed> {
    let mapping = |prog, vers, prot, port| W::new().u32(prog).u32(vers).u32(prot).u32(port);
    vec![
        ("null".into(), sel(0, false, vec![])),
        (
            "set".into(),
            sel(1, false, mapping(100_003, 3, 6, 2049).done()),
        ),
        (
            "getport".into(),
            sel(3, false, mapping(100_005, 3, 17, 0).done()),
        ),
        (
            "callit".into(),
            sel(
                5,
                false,
                W::new().u32(100_003).u32(3).u32(0).opaque(b"args").done(),
            ),
        ),
        (
            "getport-res".into(),
            sel(3, true, W::new().u32(2049).done()),
        ),
        (
            "dump-res".into(),
            sel(
                4,
                true,
                W::new()
                    .u32(1)
                    .raw(&mapping(100_003, 3, 6, 2049).done())
                    .u32(1)
                    .raw(&mapping(100_005, 3, 17, 2049).done())
                    .u32(0)
                    .done(),
            ),
        ),
    ]
}

fn mount_seeds() -> Vec<Seed> {
    vec![
        ("null".into(), sel(0, false, vec![])),
        (
            "mnt".into(),
            sel(1, false, W::new().opaque(b"/srv/export").done()),
        ),
        (
            "umnt".into(),
            sel(3, false, W::new().opaque(b"/srv/export/sub").done()),
        ),
        ("export".into(), sel(5, false, vec![])),
        (
            "mnt-res-ok".into(),
            sel(
                1,
                true,
                W::new().u32(0).opaque(&[7; 40]).u32(2).u32(1).u32(0).done(),
            ),
        ),
        (
            "mnt-res-acces".into(),
            sel(1, true, W::new().u32(13).done()),
        ),
        (
            "export-res".into(),
            sel(
                5,
                true,
                W::new()
                    .u32(1)
                    .opaque(b"/srv/export")
                    .u32(1)
                    .opaque(b"127.0.0.1")
                    .u32(0)
                    .u32(1)
                    .opaque(b"/srv/other")
                    .u32(0)
                    .u32(0)
                    .done(),
            ),
        ),
    ]
}

/// sattr3 with every field set (mode, uid, gid, size, atime = client time, mtime = server time).
fn sattr3_all() -> W {
    W::new()
        .u32(1)
        .u32(0o644)
        .u32(1)
        .u32(1000)
        .u32(1)
        .u32(1000)
        .u32(1)
        .u64(4096)
        .u32(2)
        .u32(1_700_000_000)
        .u32(5)
        .u32(1)
}

/// sattr3 that sets nothing.
fn sattr3_none() -> W {
    W::new().u32(0).u32(0).u32(0).u32(0).u32(0).u32(0)
}

fn fattr3() -> W {
    W::new()
        .u32(1) // NF3REG
        .u32(0o644)
        .u32(1)
        .u32(1000)
        .u32(1000)
        .u64(12)
        .u64(4096)
        .u32(0)
        .u32(0)
        .u64(42)
        .u64(1234)
        .u32(1_700_000_000)
        .u32(1)
        .u32(1_700_000_000)
        .u32(2)
        .u32(1_700_000_000)
        .u32(3)
}

fn nfs3_seeds() -> Vec<Seed> {
    let fh = || W::new().opaque(&[0x5a; 28]);
    let fh2 = || W::new().opaque(&[0x33; 64]);
    let dirop = |name: &[u8]| fh().opaque(name);
    let a = |p: u32, name: &str, w: W| (format!("{p:02}-{name}"), sel(p, false, w.done()));
    vec![
        a(0, "null", W::new()),
        a(1, "getattr", fh()),
        a(
            2,
            "setattr-all-guarded",
            fh().raw(&sattr3_all().done()).u32(1).u32(7).u32(8),
        ),
        a(2, "setattr-none", fh().raw(&sattr3_none().done()).u32(0)),
        a(3, "lookup", dirop(b"file.txt")),
        a(4, "access", fh().u32(0x3f)),
        a(5, "readlink", fh()),
        a(6, "read", fh().u64(1 << 20).u32(65_536)),
        a(7, "write", fh().u64(0).u32(5).u32(2).opaque(b"hello")),
        a(
            8,
            "create-unchecked",
            dirop(b"new").u32(0).raw(&sattr3_all().done()),
        ),
        a(
            8,
            "create-exclusive",
            dirop(b"excl").u32(2).fixed(&[1, 2, 3, 4, 5, 6, 7, 8]),
        ),
        a(9, "mkdir", dirop(b"dir").raw(&sattr3_none().done())),
        a(
            10,
            "symlink",
            dirop(b"ln").raw(&sattr3_none().done()).opaque(b"../target"),
        ),
        a(
            11,
            "mknod-fifo",
            dirop(b"fifo").u32(7).raw(&sattr3_none().done()),
        ),
        a(
            11,
            "mknod-chr",
            dirop(b"chr")
                .u32(4)
                .raw(&sattr3_none().done())
                .u32(1)
                .u32(3),
        ),
        a(12, "remove", dirop(b"gone")),
        a(13, "rmdir", dirop(b"gonedir")),
        a(14, "rename", dirop(b"a").raw(&fh2().opaque(b"b").done())),
        a(15, "link", fh2().raw(&dirop(b"hard").done())),
        a(16, "readdir", fh().u64(0).fixed(&[0; 8]).u32(4096)),
        a(
            17,
            "readdirplus",
            fh().u64(7).fixed(&[9; 8]).u32(4096).u32(32_768),
        ),
        a(18, "fsstat", fh()),
        a(19, "fsinfo", fh()),
        a(20, "pathconf", fh()),
        a(21, "commit", fh().u64(0).u32(0)),
        (
            "01-getattr-res-ok".into(),
            sel(1, true, W::new().u32(0).raw(&fattr3().done()).done()),
        ),
        (
            "03-lookup-res-noent".into(),
            sel(3, true, W::new().u32(2).u32(1).raw(&fattr3().done()).done()),
        ),
        (
            "06-read-res-ok".into(),
            sel(
                6,
                true,
                W::new()
                    .u32(0)
                    .u32(1)
                    .raw(&fattr3().done())
                    .u32(5)
                    .u32(1)
                    .opaque(b"hello")
                    .done(),
            ),
        ),
    ]
}

/// Every seed must decode: a seed that does not is either a wrong seed or a decoder bug. Returns
/// a description of each failure.
pub fn check_seeds() -> Vec<String> {
    use bytes::Bytes;
    let mut bad = Vec::new();
    for (target, seeds) in seeds() {
        for (name, data) in seeds {
            let ok = match target {
                "portmap" | "mount" | "nfs3" => {
                    let (&s, rest) = data.split_first().unwrap_or((&0, &[]));
                    let p = u32::from(s & 0x7f);
                    let b = Bytes::copy_from_slice(rest);
                    let res = s & 0x80 != 0;
                    let r: Result<(), String> = match (target, res) {
                        ("portmap", false) => rnfs_portmap::Args::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        ("portmap", true) => rnfs_portmap::Res::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        ("mount", false) => rnfs_mount::Args::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        ("mount", true) => rnfs_mount::Res::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        (_, false) => rnfs_nfs3::Args::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        (_, true) => rnfs_nfs3::Res::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                    };
                    r
                }
                "oncrpc" => {
                    let stream = data.get(ONCRPC_PREFIX.len()..).unwrap_or(&[]);
                    let mut input = bytes::BytesMut::from(stream);
                    let mut reader = rnfs_oncrpc::record::RecordReader::new(1 << 20, 64);
                    let mut r = Ok(());
                    let mut n = 0;
                    loop {
                        match reader.next_record(&mut input) {
                            Ok(Some(rec)) => {
                                n += 1;
                                // A record is a call or, in the "reply" seed, a reply.
                                let call = rnfs_oncrpc::decode_call(rec.clone());
                                let reply = rnfs_oncrpc::decode_reply(rec);
                                if call.is_err() && reply.is_err() {
                                    r = Err(format!("record {n}: {call:?} / {reply:?}"));
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                r = Err(e.to_string());
                                break;
                            }
                        }
                    }
                    if !input.is_empty() {
                        r = Err(format!("{} bytes left over", input.len()));
                    }
                    r
                }
                _ => Ok(()),
            };
            if let Err(e) = ok {
                bad.push(format!("{target}/{name}: {e}"));
            }
        }
    }
    bad
}
