//! Shared pieces of rnfsd's fuzz targets: sample types, the per-program check, and the seeds.
//!
//! The fuzz targets live in `fuzz_targets/`; `src/bin/gen_corpus.rs` writes the seed corpus into
//! `corpus/<target>/` from [`seeds`], after checking that every seed decodes.
//!
//! The seeds are written here as raw wire bytes (RFC 1813 / 1833 / 5531, XNFS for NLM and NSM),
//! not with the crates' encoders, so they do not depend on type names that are still moving and
//! they double as an independent check of the decoders (see [`check_seeds`]).

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

/// The body of a fuzz target for one RPC program crate or module (`rnfs_portmap`, `rnfs_mount`,
/// `rnfs_nfs3`, `rnfs_nlm`, `rnfs_nlm::nsm` brought into scope with `use`), which all expose
/// `Args::decode(procedure, bytes)`, `Res::decode(procedure, bytes)`, `procedure()`, `XdrEncode`
/// and `ArgsError::{ProcUnavail, GarbageArgs}`.
///
/// Input: byte 0 = `0x80` bit set for results (client side) / clear for arguments (server side),
/// low 7 bits modulo `procedures + 2` = the procedure (so two invalid numbers are tried too); the
/// rest = the XDR bytes. The optional third argument lists the numbers below `procedures` that the
/// program does not define (NLM v4 defines none of 16 to 19). Checks: no panic; an unknown
/// procedure gives exactly `ProcUnavail(p)` and a known one never does; a successful decode
/// re-encodes to exactly the input (the decoders are strict: one encoding per value), with a
/// matching `encoded_len` and `procedure()`.
#[macro_export]
macro_rules! program_fuzz_target {
    ($krate:ident, $procedures:expr) => {
        $crate::program_fuzz_target!($krate, $procedures, &[]);
    };
    ($krate:ident, $procedures:expr, $unavailable:expr) => {
        libfuzzer_sys::fuzz_target!(|data: &[u8]| {
            let Some((&sel, rest)) = data.split_first() else {
                return;
            };
            let procedures: u32 = $procedures;
            let unavailable: &[u32] = $unavailable;
            let procedure = u32::from(sel & 0x7f) % (procedures + 2);
            let known = procedure < procedures && !unavailable.contains(&procedure);
            let bytes = bytes::Bytes::copy_from_slice(rest);
            if sel & 0x80 == 0 {
                $crate::check_decode!(
                    $krate::Args::decode(procedure, bytes.clone()),
                    $krate,
                    procedure,
                    known,
                    bytes
                );
            } else {
                $crate::check_decode!(
                    $krate::Res::decode(procedure, bytes.clone()),
                    $krate,
                    procedure,
                    known,
                    bytes
                );
            }
        });
    };
}

/// See [`program_fuzz_target`].
#[macro_export]
macro_rules! check_decode {
    ($result:expr, $krate:ident, $procedure:ident, $known:ident, $bytes:ident) => {
        match $result {
            Ok(v) => {
                assert!($known, "decoded unknown procedure {}", $procedure);
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
                assert!(!$known, "known procedure {p} reported unavailable");
            }
            Err(_) => assert!($known, "unknown procedure not ProcUnavail"),
        }
    };
}

/// Procedures per program (highest procedure number + 1).
pub const PORTMAP_PROCEDURES: u32 = 6;
pub const MOUNT_PROCEDURES: u32 = 6;
pub const NFS3_PROCEDURES: u32 = 22;
pub const NLM_PROCEDURES: u32 = 24;
/// The numbers below [`NLM_PROCEDURES`] that NLM v4 does not define.
pub const NLM_UNAVAILABLE: &[u32] = &[16, 17, 18, 19];
pub const NSM_PROCEDURES: u32 = 7;

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
        ("peek", peek_seeds()),
        ("portmap", portmap_seeds()),
        ("mount", mount_seeds()),
        ("nfs3", nfs3_seeds()),
        ("nlm", nlm_seeds()),
        ("nsm", nsm_seeds()),
        ("dispatch", dispatch::seeds()),
        ("nfs4_compound", nfs4_seeds()),
    ]
}

/// COMPOUND arguments a server reads (no session: EXCHANGE_ID alone, or operations SEQUENCE
/// would have to precede), for the `nfs4_compound` target and the `dispatch` target.
pub fn nfs4_compounds() -> Vec<(&'static str, Vec<u8>)> {
    use rnfs_nfs4::*;
    let compound = |minorversion, ops: Vec<ArgOp>| {
        rnfs_xdr::to_bytes(&Compound {
            tag: Opaque(bytes::Bytes::from_static(b"fuzz")),
            minorversion,
            ops,
        })
        .to_vec()
    };
    let exchange_id = ArgOp::ExchangeId(EXCHANGE_ID4args {
        eia_clientowner: client_owner4 {
            co_verifier: [1; 8],
            co_ownerid: Opaque(bytes::Bytes::from_static(b"fuzz-client")),
        },
        eia_flags: 0,
        eia_state_protect: state_protect4_a::None,
        eia_client_impl_id: rnfs_xdr::Array(Vec::new()),
    });
    let sequence = ArgOp::Sequence(SEQUENCE4args {
        sa_sessionid: [7; 16],
        sa_sequenceid: 1,
        sa_slotid: 0,
        sa_highest_slotid: 0,
        sa_cachethis: false,
    });
    vec![
        ("exchange-id", compound(1, vec![exchange_id])),
        (
            "sequence-walk",
            compound(
                1,
                vec![
                    sequence.clone(),
                    ArgOp::PutRootFh,
                    ArgOp::Lookup(Opaque(bytes::Bytes::from_static(b"tmp"))),
                    ArgOp::GetFh,
                    ArgOp::GetAttr(Bitmap(vec![0x0010_011a, 0x0030_a23a])),
                    ArgOp::ReadDir(READDIR4args {
                        cookie: 0,
                        cookieverf: [0; 8],
                        dircount: 4096,
                        maxcount: 8192,
                        attr_request: Bitmap(vec![0x0010_0000]),
                    }),
                ],
            ),
        ),
        (
            "sequence-open-read",
            compound(
                2,
                vec![
                    sequence.clone(),
                    ArgOp::PutRootFh,
                    ArgOp::Open(OPEN4args {
                        seqid: 0,
                        share_access: OPEN4_SHARE_ACCESS_READ,
                        share_deny: 0,
                        owner: state_owner4 {
                            clientid: 1,
                            owner: Opaque(bytes::Bytes::from_static(b"o")),
                        },
                        openhow: OpenHow(None),
                        claim: open_claim4::Null(Opaque(bytes::Bytes::from_static(b"f"))),
                    }),
                    ArgOp::Read(READ4args {
                        stateid: stateid4::CURRENT,
                        offset: 0,
                        count: 4096,
                    }),
                ],
            ),
        ),
        (
            "sequence-sparse-xattr",
            compound(
                2,
                vec![
                    sequence.clone(),
                    ArgOp::PutRootFh,
                    ArgOp::Seek(SEEK4args {
                        stateid: stateid4::ANONYMOUS,
                        offset: 4096,
                        what: data_content4::NFS4_CONTENT_HOLE,
                    }),
                    ArgOp::ReadPlus(READ_PLUS4args {
                        stateid: stateid4::ANONYMOUS,
                        offset: 0,
                        count: 65536,
                    }),
                    ArgOp::Allocate(ALLOCATE4args {
                        stateid: stateid4::CURRENT,
                        offset: 0,
                        length: 8192,
                    }),
                    ArgOp::Deallocate(ALLOCATE4args {
                        stateid: stateid4::CURRENT,
                        offset: 4096,
                        length: 4096,
                    }),
                    ArgOp::SetXattr(SETXATTR4args {
                        option: setxattr_option4::SETXATTR4_CREATE,
                        key: Opaque(bytes::Bytes::from_static(b"color")),
                        value: Opaque(bytes::Bytes::from_static(b"blue")),
                    }),
                    ArgOp::GetXattr(Opaque(bytes::Bytes::from_static(b"color"))),
                    ArgOp::ListXattrs(LISTXATTRS4args {
                        cookie: 0,
                        maxcount: 4096,
                    }),
                    ArgOp::RemoveXattr(Opaque(bytes::Bytes::from_static(b"color"))),
                ],
            ),
        ),
        (
            "sequence-copy-offload-clone",
            compound(
                2,
                vec![
                    sequence,
                    ArgOp::PutRootFh,
                    ArgOp::SaveFh,
                    ArgOp::PutRootFh,
                    ArgOp::Copy(COPY4args {
                        ca_src_stateid: stateid4::ANONYMOUS,
                        ca_dst_stateid: stateid4::CURRENT,
                        ca_src_offset: 0,
                        ca_dst_offset: 4096,
                        ca_count: 0,
                        ca_consecutive: true,
                        ca_synchronous: false,
                        ca_source_server: rnfs_xdr::Array(vec![netloc4::Addr(netaddr4 {
                            na_r_netid: Opaque(bytes::Bytes::from_static(b"tcp")),
                            na_r_addr: Opaque(bytes::Bytes::from_static(b"127.0.0.1.8.1")),
                        })]),
                    }),
                    ArgOp::OffloadStatus(stateid4::CURRENT),
                    ArgOp::OffloadCancel(stateid4::CURRENT),
                    ArgOp::Clone(CLONE4args {
                        cl_src_stateid: stateid4::ANONYMOUS,
                        cl_dst_stateid: stateid4::ANONYMOUS,
                        cl_src_offset: 0,
                        cl_dst_offset: 0,
                        cl_count: 0,
                    }),
                ],
            ),
        ),
        ("putrootfh-alone", compound(1, vec![ArgOp::PutRootFh])),
        ("minor-0", compound(0, vec![ArgOp::PutRootFh])),
    ]
}

fn nfs4_seeds() -> Vec<Seed> {
    use rnfs_nfs4::*;
    let mut v: Vec<Seed> = nfs4_compounds()
        .into_iter()
        .map(|(name, c)| {
            let mut b = vec![0];
            b.extend(c);
            (format!("args-{name}"), b)
        })
        .collect();
    let res = CompoundRes {
        status: nfsstat4::NFS4ERR_DENIED,
        tag: Opaque(bytes::Bytes::new()),
        results: vec![
            ResOp::ok(
                op::OP_SEQUENCE,
                ResBody::Sequence(SEQUENCE4resok {
                    sr_sessionid: [7; 16],
                    sr_sequenceid: 1,
                    sr_slotid: 0,
                    sr_highest_slotid: 7,
                    sr_target_highest_slotid: 7,
                    sr_status_flags: 0,
                }),
            ),
            ResOp::status(op::OP_PUTFH, nfsstat4::NFS4_OK),
            ResOp::ok(
                op::OP_GETFH,
                ResBody::GetFh(Opaque(bytes::Bytes::from_static(&[9; 24]))),
            ),
            ResOp {
                op: op::OP_LOCK,
                status: nfsstat4::NFS4ERR_DENIED,
                body: Some(ResBody::Denied(LOCK4denied {
                    offset: 0,
                    length: u64::MAX,
                    locktype: nfs_lock_type4::WRITE_LT,
                    owner: state_owner4 {
                        clientid: 3,
                        owner: Opaque(bytes::Bytes::from_static(b"l")),
                    },
                })),
            },
        ],
    };
    let mut b = vec![1];
    b.extend(rnfs_xdr::to_bytes(&res).to_vec());
    v.push(("res-sequence-lock-denied".into(), b));
    let res = CompoundRes {
        status: nfsstat4::NFS4_OK,
        tag: Opaque(bytes::Bytes::new()),
        results: vec![
            ResOp::ok(
                op::OP_SEEK,
                ResBody::Seek(seek_res4 {
                    eof: false,
                    offset: 8192,
                }),
            ),
            ResOp::ok(
                op::OP_READ_PLUS,
                ResBody::ReadPlus(read_plus_res4 {
                    eof: true,
                    contents: rnfs_xdr::Array(vec![
                        read_plus_content::Data(data4 {
                            offset: 0,
                            data: Opaque(bytes::Bytes::from_static(b"abc")),
                        }),
                        read_plus_content::Hole(data_info4 {
                            offset: 3,
                            length: 4093,
                        }),
                    ]),
                }),
            ),
            ResOp::ok(
                op::OP_LISTXATTRS,
                ResBody::ListXattrs(LISTXATTRS4resok {
                    cookie: 1,
                    names: rnfs_xdr::Array(vec![Opaque(bytes::Bytes::from_static(b"color"))]),
                    eof: true,
                }),
            ),
            ResOp::status(op::OP_GETXATTR, nfsstat4::NFS4ERR_NOXATTR),
        ],
    };
    let mut b = vec![1];
    b.extend(rnfs_xdr::to_bytes(&res).to_vec());
    v.push(("res-seek-read-plus-listxattrs".into(), b));
    let res = CompoundRes {
        status: nfsstat4::NFS4ERR_NOTSUPP,
        tag: Opaque(bytes::Bytes::new()),
        results: vec![
            ResOp::ok(
                op::OP_COPY,
                ResBody::Copy(COPY4resok {
                    cr_response: write_response4 {
                        wr_callback_id: rnfs_xdr::Array(vec![stateid4 {
                            seqid: 1,
                            other: [4; 12],
                        }]),
                        wr_count: 0,
                        wr_committed: stable_how4::UNSTABLE4,
                        wr_writeverf: [2; 8],
                    },
                    cr_requirements: copy_requirements4 {
                        cr_consecutive: true,
                        cr_synchronous: false,
                    },
                }),
            ),
            ResOp::ok(
                op::OP_OFFLOAD_STATUS,
                ResBody::OffloadStatus(OFFLOAD_STATUS4resok {
                    osr_count: 8 << 20,
                    osr_complete: rnfs_xdr::Array(vec![nfsstat4::NFS4_OK]),
                }),
            ),
            ResOp {
                op: op::OP_COPY,
                status: nfsstat4::NFS4ERR_OFFLOAD_NO_REQS,
                body: Some(ResBody::CopyRequirements(copy_requirements4::default())),
            },
            ResOp::status(op::OP_CLONE, nfsstat4::NFS4ERR_NOTSUPP),
        ],
    };
    let mut b = vec![1];
    b.extend(rnfs_xdr::to_bytes(&res).to_vec());
    v.push(("res-copy-offload-status-clone".into(), b));
    // A client's reply to CB_SEQUENCE + CB_RECALL, and the call itself (modes 2 and 3).
    let cb_res = cb::CB_COMPOUND4res {
        status: nfsstat4::NFS4_OK,
        tag: Opaque(bytes::Bytes::new()),
        resarray: rnfs_xdr::Array(vec![
            cb::CbResOp {
                op: cb::OP_CB_SEQUENCE,
                status: nfsstat4::NFS4_OK,
                sequence: Some(cb::CB_SEQUENCE4resok {
                    csr_sessionid: [5; 16],
                    csr_sequenceid: 1,
                    csr_slotid: 0,
                    csr_highest_slotid: 0,
                    csr_target_highest_slotid: 0,
                }),
                attrs: None,
            },
            cb::CbResOp {
                op: cb::OP_CB_GETATTR,
                status: nfsstat4::NFS4_OK,
                sequence: None,
                attrs: Some(fattr4 {
                    attrmask: Bitmap::from_bits(&[attr::num::CHANGE, attr::num::SIZE]),
                    attr_vals: Opaque(bytes::Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 5])),
                }),
            },
            cb::CbResOp {
                op: cb::OP_CB_RECALL,
                status: nfsstat4::NFS4_OK,
                sequence: None,
                attrs: None,
            },
        ]),
    };
    let mut b = vec![2];
    b.extend(rnfs_xdr::to_bytes(&cb_res).to_vec());
    v.push(("cb-res-sequence-recall".into(), b));
    let cb_args = cb::CB_COMPOUND4args {
        tag: Opaque(bytes::Bytes::new()),
        minorversion: 2,
        callback_ident: 0,
        argarray: rnfs_xdr::Array(vec![
            cb::CbArgOp::Sequence(cb::CB_SEQUENCE4args {
                csa_sessionid: [5; 16],
                csa_sequenceid: 1,
                ..Default::default()
            }),
            cb::CbArgOp::Recall(cb::CB_RECALL4args {
                stateid: stateid4 {
                    seqid: 1,
                    other: [3; 12],
                },
                truncate: false,
                fh: Opaque(bytes::Bytes::from_static(&[9; 24])),
            }),
        ]),
    };
    let mut b = vec![3];
    b.extend(rnfs_xdr::to_bytes(&cb_args).to_vec());
    v.push(("cb-args-sequence-recall".into(), b));
    // CB_OFFLOAD (RFC 7862 §16.1): a finished copy and a failed one; and the client's answer.
    let offload = |info| {
        cb::CbArgOp::Offload(cb::CB_OFFLOAD4args {
            coa_fh: Opaque(bytes::Bytes::from_static(&[9; 24])),
            coa_stateid: stateid4 {
                seqid: 1,
                other: [4; 12],
            },
            coa_offload_info: info,
        })
    };
    let cb_args = cb::CB_COMPOUND4args {
        tag: Opaque(bytes::Bytes::new()),
        minorversion: 2,
        callback_ident: 0,
        argarray: rnfs_xdr::Array(vec![
            cb::CbArgOp::Sequence(cb::CB_SEQUENCE4args {
                csa_sessionid: [5; 16],
                csa_sequenceid: 2,
                ..Default::default()
            }),
            offload(cb::offload_info4::Done(write_response4 {
                wr_callback_id: rnfs_xdr::Array(Vec::new()),
                wr_count: 256 << 20,
                wr_committed: stable_how4::UNSTABLE4,
                wr_writeverf: [2; 8],
            })),
            offload(cb::offload_info4::Failed(nfsstat4::NFS4ERR_NOSPC, 4096)),
        ]),
    };
    let mut b = vec![3];
    b.extend(rnfs_xdr::to_bytes(&cb_args).to_vec());
    v.push(("cb-args-sequence-offload".into(), b));
    let cb_res = cb::CB_COMPOUND4res {
        status: nfsstat4::NFS4_OK,
        tag: Opaque(bytes::Bytes::new()),
        resarray: rnfs_xdr::Array(vec![cb::CbResOp {
            op: cb::OP_CB_OFFLOAD,
            status: nfsstat4::NFS4_OK,
            sequence: None,
            attrs: None,
        }]),
    };
    let mut b = vec![2];
    b.extend(rnfs_xdr::to_bytes(&cb_res).to_vec());
    v.push(("cb-res-offload".into(), b));
    v
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

/// Single messages (no record marker): the calls the server peeks at most, and replies.
fn peek_seeds() -> Vec<Seed> {
    // WRITE3args: file handle, offset, count, stable (UNSTABLE), data.
    let write = W::new()
        .opaque(&[0xab; 32])
        .u64(4096)
        .u32(5)
        .u32(0)
        .opaque(b"hello")
        .done();
    let read = W::new().opaque(&[0xcd; 64]).u64(0).u32(1 << 20).done();
    let accepted = |stat: u32| W::new().u32(5).u32(1).u32(0).u32(0).opaque(b"").u32(stat);
    vec![
        ("null-call".into(), call(1, 100_003, 3, 0, None, &[])),
        (
            "write-authsys".into(),
            call(2, 100_003, 3, 7, Some(1000), &write),
        ),
        (
            "read-authsys".into(),
            call(3, 100_003, 3, 6, Some(0), &read),
        ),
        (
            "mnt".into(),
            call(
                4,
                100_005,
                3,
                1,
                None,
                &W::new().opaque(b"/srv/export").done(),
            ),
        ),
        ("reply-nfs-noent".into(), accepted(0).u32(2).done()),
        (
            "reply-prog-mismatch".into(),
            accepted(2).u32(3).u32(3).done(),
        ),
        (
            "reply-auth-error".into(),
            W::new().u32(6).u32(1).u32(1).u32(1).u32(5).done(),
        ),
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

/// NLM v4 (XNFS chapters 10 and 14, RFC 1813 Appendix II).
fn nlm_seeds() -> Vec<Seed> {
    // nlm4_lock: caller_name, fh, oh, svid, l_offset, l_len.
    let alock = || {
        W::new()
            .opaque(b"client.example")
            .opaque(&[0x5a; 28])
            .opaque(b"4242@client.example")
            .u32(4242)
            .u64(0)
            .u64(0)
    };
    let cookie = || W::new().opaque(&[0, 0, 0, 0, 0, 0, 0, 1]);
    // cookie, block, exclusive, alock, reclaim, state.
    let lockargs = |block: u32, reclaim: u32| {
        cookie()
            .u32(block)
            .u32(1)
            .raw(&alock().done())
            .u32(reclaim)
            .u32(3)
    };
    let testargs = || cookie().u32(1).raw(&alock().done());
    let holder = || W::new().u32(1).u32(77).opaque(b"77@other").u64(100).u64(10);
    let res = |stat: u32| cookie().u32(stat);
    // cookie, share (caller_name, fh, oh, mode, access), reclaim.
    let shareargs = || {
        cookie()
            .opaque(b"pc.example")
            .opaque(&[0x33; 64])
            .opaque(b"share-owner")
            .u32(2)
            .u32(3)
            .u32(0)
    };
    let a = |p: u32, name: &str, w: W| (format!("{p:02}-{name}"), sel(p, false, w.done()));
    let r = |p: u32, name: &str, w: W| (format!("{p:02}-{name}-res"), sel(p, true, w.done()));
    vec![
        a(0, "null", W::new()),
        a(1, "test", testargs()),
        a(2, "lock", lockargs(0, 0)),
        a(2, "lock-block-reclaim", lockargs(1, 1)),
        a(3, "cancel", cookie().u32(1).u32(1).raw(&alock().done())),
        a(4, "unlock", cookie().raw(&alock().done())),
        a(5, "granted", testargs()),
        a(7, "lock-msg", lockargs(1, 0)),
        a(11, "test-res-denied", cookie().u32(1).raw(&holder().done())),
        a(12, "lock-res", res(0)),
        a(20, "share", shareargs()),
        a(21, "unshare", shareargs()),
        a(22, "nm-lock", lockargs(0, 0)),
        a(23, "free-all", W::new().opaque(b"client.example").u32(5)),
        r(1, "test-granted", res(0)),
        r(1, "test-denied", cookie().u32(1).raw(&holder().done())),
        r(2, "lock-blocked", res(3)),
        r(5, "granted", res(0)),
        r(20, "share", res(0).u32(1)),
    ]
}

/// NSM v1 (XNFS chapter 11).
fn nsm_seeds() -> Vec<Seed> {
    // my_id: my_name, my_prog, my_vers, my_proc (Linux lockd's callback: NLM v3 proc 16).
    let my_id = || {
        W::new()
            .opaque(b"server.example")
            .u32(100_021)
            .u32(3)
            .u32(16)
    };
    let mon_id = || W::new().opaque(b"client.example").raw(&my_id().done());
    vec![
        ("null".into(), sel(0, false, vec![])),
        (
            "stat".into(),
            sel(1, false, W::new().opaque(b"client.example").done()),
        ),
        ("mon".into(), sel(2, false, mon_id().fixed(&[7; 16]).done())),
        ("unmon".into(), sel(3, false, mon_id().done())),
        ("unmon-all".into(), sel(4, false, my_id().done())),
        ("simu-crash".into(), sel(5, false, vec![])),
        (
            "notify".into(),
            sel(6, false, W::new().opaque(b"client.example").u32(7).done()),
        ),
        (
            "stat-res".into(),
            sel(1, true, W::new().u32(0).u32(3).done()),
        ),
        (
            "mon-res-fail".into(),
            sel(2, true, W::new().u32(1).u32(3).done()),
        ),
        ("unmon-res".into(), sel(3, true, W::new().u32(5).done())),
    ]
}

/// The input layout of the `dispatch` target (whole requests through `Service::handle_record`),
/// shared by the target, its seeds and the seed check.
///
/// * byte 0, flags: bits 0–1 the kind (0 = the rest is the raw RPC message; 1 = NFS, 2 = MOUNT,
///   3 = portmapper: a valid call header is built and the rest are the arguments); bit 2 = over
///   UDP (else TCP); bit 3 = AUTH_NONE (else AUTH_SYS); bit 4 = byte 2 is the program version
///   (else the version the server serves);
/// * byte 1: the procedure (`% 32`, so a few invalid numbers are tried too);
/// * byte 2: the AUTH_SYS uid selector (0 = root, 1 = 1000, 2 = 65534, else 1000 + byte), or the
///   version with bit 4;
/// * byte 3: the low byte of the xid;
/// * the rest: the arguments (or the message), in which every `FH#` followed by an index byte is
///   replaced by the XDR encoding (length + bytes) of the scratch export's handle of that index
///   (modulo their number: 0 = the root, then a file, a directory, a symlink, a file in the
///   directory, a FIFO), so calls get past file-handle checks.
pub mod dispatch {
    use super::{Seed, W};

    pub const HANDLE_TOKEN: &[u8; 3] = b"FH#";
    pub const KIND_RAW: u8 = 0;
    pub const KIND_NFS: u8 = 1;
    pub const KIND_MOUNT: u8 = 2;
    pub const KIND_PORTMAP: u8 = 3;
    pub const FLAG_UDP: u8 = 4;
    pub const FLAG_AUTH_NONE: u8 = 8;
    pub const FLAG_VERSION: u8 = 16;

    /// A decoded input: the RPC message to serve and over which transport.
    pub struct Request {
        pub message: Vec<u8>,
        pub udp: bool,
    }

    /// The XDR opaque encoding of `h`.
    fn opaque(h: &[u8]) -> Vec<u8> {
        W::new().opaque(h).done()
    }

    /// `body` with each handle token replaced (see the module docs).
    pub fn substitute(body: &[u8], handles: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::with_capacity(body.len() + 64);
        let mut i = 0;
        while i < body.len() {
            if !handles.is_empty()
                && body[i..].starts_with(HANDLE_TOKEN)
                && i + HANDLE_TOKEN.len() < body.len()
            {
                let idx = usize::from(body[i + HANDLE_TOKEN.len()]) % handles.len();
                out.extend_from_slice(&opaque(&handles[idx]));
                i += HANDLE_TOKEN.len() + 1;
            } else {
                out.push(body[i]);
                i += 1;
            }
        }
        out
    }

    /// Builds the request an input stands for; `None` if it is too short.
    pub fn request(data: &[u8], handles: &[Vec<u8>]) -> Option<Request> {
        let (&flags, rest) = data.split_first()?;
        let udp = flags & FLAG_UDP != 0;
        let kind = flags & 3;
        if kind == KIND_RAW {
            return Some(Request {
                message: substitute(rest, handles),
                udp,
            });
        }
        if rest.len() < 3 {
            return None;
        }
        let (proc_num, sel, xid_low) = (u32::from(rest[0] % 32), rest[1], rest[2]);
        let (prog, vers) = match kind {
            KIND_NFS => (100_003, 3),
            KIND_MOUNT => (100_005, 3),
            _ => (100_000, 2),
        };
        let vers = if flags & FLAG_VERSION != 0 {
            u32::from(sel)
        } else {
            vers
        };
        let uid = match sel {
            0 => 0,
            1 => 1000,
            2 => 65534,
            s => 1000 + u32::from(s),
        };
        let auth_sys = (flags & FLAG_AUTH_NONE == 0).then_some(uid);
        let args = substitute(&rest[3..], handles);
        let xid = 0x5eed_0000 | u32::from(xid_low);
        Some(Request {
            message: super::call(xid, prog, vers, proc_num, auth_sys, &args),
            udp,
        })
    }

    fn seed(name: &str, flags: u8, proc_num: u8, sel: u8, args: W) -> Seed {
        let mut v = vec![flags, proc_num, sel, proc_num];
        v.extend(args.done());
        (name.to_string(), v)
    }

    /// A handle token for handle `i`.
    fn fh(i: u8) -> W {
        W::new().raw(HANDLE_TOKEN).raw(&[i])
    }

    const ROOT: u8 = 0;
    const FILE: u8 = 1;
    const DIR: u8 = 2;
    const LINK: u8 = 3;

    /// NFSv4 COMPOUND calls (version 4 through [`FLAG_VERSION`], uid 1004), and NULL.
    fn nfs4_seeds() -> Vec<Seed> {
        let v4 = KIND_NFS | FLAG_VERSION;
        let mut v = vec![seed("nfs4-null", v4, 0, 4, W::new())];
        for (name, args) in super::nfs4_compounds() {
            v.push(seed(&format!("nfs4-{name}"), v4, 1, 4, W::new().raw(&args)));
        }
        v
    }

    pub fn seeds() -> Vec<Seed> {
        let nfs = KIND_NFS;
        let sattr_none = || super::sattr3_none();
        let dirop = |dir: u8, name: &[u8]| fh(dir).opaque(name);
        let mut v = vec![
            seed("nfs-null", nfs, 0, 1, W::new()),
            seed("nfs-getattr-root", nfs, 1, 1, fh(ROOT)),
            seed(
                "nfs-setattr-file",
                nfs,
                2,
                1,
                fh(FILE).raw(&super::sattr3_all().done()).u32(0),
            ),
            seed("nfs-lookup", nfs, 3, 1, dirop(ROOT, b"f")),
            seed("nfs-access", nfs, 4, 2, fh(FILE).u32(0x3f)),
            seed("nfs-readlink", nfs, 5, 1, fh(LINK)),
            seed("nfs-read", nfs, 6, 1, fh(FILE).u64(0).u32(4096)),
            seed("nfs-read-spliced", nfs, 6, 1, fh(FILE).u64(0).u32(64 << 10)),
            seed(
                "nfs-write-unstable",
                nfs,
                7,
                1,
                fh(FILE).u64(100).u32(5).u32(0).opaque(b"hello"),
            ),
            seed(
                "nfs-write-filesync",
                nfs,
                7,
                1,
                fh(FILE).u64(0).u32(3).u32(2).opaque(b"abc"),
            ),
            seed(
                "nfs-create-guarded",
                nfs,
                8,
                1,
                dirop(DIR, b"new").u32(1).raw(&sattr_none().done()),
            ),
            seed(
                "nfs-create-exclusive",
                nfs,
                8,
                1,
                dirop(ROOT, b"excl").u32(2).fixed(&[1, 2, 3, 4, 5, 6, 7, 8]),
            ),
            seed(
                "nfs-mkdir",
                nfs,
                9,
                1,
                dirop(ROOT, b"sub").raw(&sattr_none().done()),
            ),
            seed(
                "nfs-symlink",
                nfs,
                10,
                1,
                dirop(DIR, b"ln").raw(&sattr_none().done()).opaque(b"../f"),
            ),
            seed(
                "nfs-mknod-fifo",
                nfs,
                11,
                1,
                dirop(DIR, b"fifo").u32(7).raw(&sattr_none().done()),
            ),
            seed("nfs-remove", nfs, 12, 1, dirop(DIR, b"g")),
            seed("nfs-rmdir", nfs, 13, 1, dirop(ROOT, b"d")),
            seed(
                "nfs-rename",
                nfs,
                14,
                1,
                dirop(ROOT, b"f").raw(&dirop(DIR, b"f2").done()),
            ),
            seed(
                "nfs-link",
                nfs,
                15,
                1,
                fh(FILE).raw(&dirop(DIR, b"hard").done()),
            ),
            seed(
                "nfs-readdir",
                nfs,
                16,
                1,
                fh(ROOT).u64(0).fixed(&[0; 8]).u32(4096),
            ),
            seed(
                "nfs-readdirplus",
                nfs,
                17,
                1,
                fh(DIR).u64(0).fixed(&[0; 8]).u32(4096).u32(32_768),
            ),
            seed("nfs-fsstat", nfs, 18, 1, fh(ROOT)),
            seed("nfs-fsinfo", nfs, 19, 1, fh(ROOT)),
            seed("nfs-pathconf", nfs, 20, 1, fh(ROOT)),
            seed("nfs-commit", nfs, 21, 1, fh(FILE).u64(0).u32(0)),
            seed("nfs-getattr-root-squashed", nfs, 1, 0, fh(ROOT)),
            seed(
                "nfs-getattr-auth-none-udp",
                nfs | FLAG_AUTH_NONE | FLAG_UDP,
                1,
                1,
                fh(DIR),
            ),
            seed("nfs-v4-mismatch", nfs | FLAG_VERSION, 0, 4, W::new()),
            seed("mount-mnt", KIND_MOUNT, 1, 1, W::new().opaque(b"/export")),
            seed(
                "mount-mnt-below",
                KIND_MOUNT,
                1,
                1,
                W::new().opaque(b"/export/d"),
            ),
            seed("mount-dump", KIND_MOUNT, 2, 1, W::new()),
            seed("mount-umnt", KIND_MOUNT, 3, 1, W::new().opaque(b"/export")),
            seed("mount-export", KIND_MOUNT, 5, 1, W::new()),
            seed(
                "portmap-getport",
                KIND_PORTMAP,
                3,
                1,
                W::new().u32(100_003).u32(3).u32(6).u32(0),
            ),
            seed(
                "portmap-set",
                KIND_PORTMAP,
                1,
                1,
                W::new().u32(400_000).u32(1).u32(6).u32(999),
            ),
            seed("portmap-dump", KIND_PORTMAP, 4, 1, W::new()),
        ];
        // A whole message, as the raw kind sees it.
        let mut raw = vec![KIND_RAW];
        raw.extend(super::call(
            7,
            100_003,
            3,
            1,
            Some(1000),
            &W::new().raw(HANDLE_TOKEN).raw(&[0]).done(),
        ));
        v.push(("raw-getattr".to_string(), raw));
        v.extend(nlm_seeds());
        v.extend(nfs4_seeds());
        v
    }

    /// NLM v4 and NSM calls as whole messages (the raw kind: their programs have no kind bits).
    fn nlm_seeds() -> Vec<Seed> {
        let alock = |svid: u32, offset: u64, len: u64| {
            W::new()
                .opaque(b"fuzz-host")
                .raw(HANDLE_TOKEN)
                .raw(&[FILE])
                .opaque(b"oh")
                .u32(svid)
                .u64(offset)
                .u64(len)
        };
        let cookie = || W::new().opaque(b"ck");
        let lock = |block: u32, svid: u32| {
            cookie()
                .u32(block)
                .u32(1)
                .raw(&alock(svid, 0, 10).done())
                .u32(0)
                .u32(1)
        };
        let share = cookie()
            .opaque(b"fuzz-host")
            .raw(HANDLE_TOKEN)
            .raw(&[FILE])
            .opaque(b"oh")
            .u32(2)
            .u32(3)
            .u32(0);
        let calls: [(&str, u32, u32, u32, W); 9] = [
            (
                "nlm-test",
                100_021,
                4,
                1,
                cookie().u32(1).raw(&alock(1, 5, 0).done()),
            ),
            ("nlm-lock", 100_021, 4, 2, lock(0, 1)),
            ("nlm-lock-block", 100_021, 4, 2, lock(1, 2)),
            (
                "nlm-cancel",
                100_021,
                4,
                3,
                cookie().u32(1).u32(1).raw(&alock(2, 0, 10).done()),
            ),
            (
                "nlm-unlock",
                100_021,
                4,
                4,
                cookie().raw(&alock(1, 0, 0).done()),
            ),
            ("nlm-lock-msg", 100_021, 4, 7, lock(0, 3)),
            ("nlm-share", 100_021, 4, 20, share),
            (
                "nlm-free-all",
                100_021,
                4,
                23,
                W::new().opaque(b"fuzz-host").u32(3),
            ),
            (
                "nsm-notify",
                100_024,
                1,
                6,
                W::new().opaque(b"fuzz-host").u32(3),
            ),
        ];
        calls
            .into_iter()
            .map(|(name, prog, vers, proc_num, args)| {
                let mut raw = vec![KIND_RAW];
                raw.extend(super::call(
                    9,
                    prog,
                    vers,
                    proc_num,
                    Some(1000),
                    &args.done(),
                ));
                (format!("raw-{name}"), raw)
            })
            .collect()
    }

    /// A COMPOUND's arguments decode: the header and every operation.
    pub fn nfs4_check(args: bytes::Bytes) -> Result<(), String> {
        let mut d = rnfs_nfs4::Decoder::new(args);
        let h = rnfs_nfs4::CompoundHeader::decode(&mut d).map_err(|e| e.to_string())?;
        for _ in 0..h.op_count {
            rnfs_nfs4::ArgOp::decode(&mut d).map_err(|e| e.to_string())?;
        }
        d.finish().map_err(|e| e.to_string())
    }

    /// Checks one seed: it builds a call that decodes, with arguments its program accepts.
    pub fn check(data: &[u8]) -> Result<(), String> {
        // Stand-in handles of the sizes the local backend makes.
        let handles: Vec<Vec<u8>> = (0u8..6).map(|i| vec![i; 40]).collect();
        let req = request(data, &handles).ok_or("too short")?;
        let (header, args) = rnfs_oncrpc::decode_call(bytes::Bytes::from(req.message))
            .map_err(|e| format!("call header: {e}"))?;
        let p = header.proc_num;
        let r = match (header.prog, header.vers) {
            (100_003, 3) => rnfs_nfs3::Args::decode(p, args)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (100_005, 3) => rnfs_mount::Args::decode(p, args)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (100_000, 2) => rnfs_portmap::Args::decode(p, args)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (100_021, 4) => rnfs_nlm::Args::decode(p, args)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (100_024, 1) => rnfs_nlm::nsm::Args::decode(p, args)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            (100_003, 4) if p == 1 => nfs4_check(args),
            // A version the server does not serve: nothing to decode.
            _ => Ok(()),
        };
        r.map_err(|e| format!("arguments of procedure {p}: {e}"))
    }
}

/// Every seed must decode: a seed that does not is either a wrong seed or a decoder bug. Returns
/// a description of each failure.
/// A `peek` seed is a call or a reply that both the peek and the decoder accept.
fn check_peek_seed(data: &[u8]) -> Result<(), String> {
    use rnfs_oncrpc::peek::{CallPeek, ReplyPeek};
    let bytes = bytes::Bytes::copy_from_slice(data);
    let call = CallPeek::parse(data).is_ok() && rnfs_oncrpc::decode_call(bytes.clone()).is_ok();
    let reply = ReplyPeek::parse(data).is_ok() && rnfs_oncrpc::decode_reply(bytes).is_ok();
    if call || reply {
        Ok(())
    } else {
        Err("neither a call nor a reply".into())
    }
}

/// An `nfs4_compound` seed decodes whole on the side its first byte selects.
fn check_nfs4_seed(data: &[u8]) -> Result<(), String> {
    let (&mode, rest) = data.split_first().ok_or("empty")?;
    let rest = bytes::Bytes::copy_from_slice(rest);
    let whole = |r: rnfs_xdr::Result<()>| r.map_err(|e| e.to_string());
    match mode % 4 {
        0 => dispatch::nfs4_check(rest),
        1 => whole(rnfs_xdr::from_bytes::<rnfs_nfs4::CompoundRes>(rest).map(|_| ())),
        2 => whole(rnfs_xdr::from_bytes::<rnfs_nfs4::cb::CB_COMPOUND4res>(rest).map(|_| ())),
        _ => whole(rnfs_xdr::from_bytes::<rnfs_nfs4::cb::CB_COMPOUND4args>(rest).map(|_| ())),
    }
}

pub fn check_seeds() -> Vec<String> {
    use bytes::Bytes;
    let mut bad = Vec::new();
    for (target, seeds) in seeds() {
        for (name, data) in seeds {
            let ok = match target {
                "portmap" | "mount" | "nfs3" | "nlm" | "nsm" => {
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
                        ("nlm", false) => rnfs_nlm::Args::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        ("nlm", true) => rnfs_nlm::Res::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        ("nsm", false) => rnfs_nlm::nsm::Args::decode(p, b)
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        ("nsm", true) => rnfs_nlm::nsm::Res::decode(p, b)
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
                "peek" => check_peek_seed(&data),
                "dispatch" => dispatch::check(&data),
                "nfs4_compound" => check_nfs4_seed(&data),
                _ => Ok(()),
            };
            if let Err(e) = ok {
                bad.push(format!("{target}/{name}: {e}"));
            }
        }
    }
    bad
}
