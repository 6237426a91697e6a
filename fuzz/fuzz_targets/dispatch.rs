//! Fuzz target for whole-request dispatch: arbitrary RPC messages through
//! `Service::handle_record`, against a real `LocalFs` export in a scratch directory — decoding,
//! export rules, squashing, every NFS/MOUNT/portmap/NLM/NSM procedure (NLM's locks mirrored as
//! OFD locks on the scratch files), the local backend's system calls,
//! the duplicate request cache and reply encoding.
//!
//! Input layout: see `rnfs_fuzz::dispatch` (flags, procedure, uid, xid, then arguments in which
//! `FH#<i>` stands for a real file handle of the scratch export).
//!
//! The scratch export is created once per process under the temporary directory
//! (`rnfs-fuzz-dispatch-<pid>`, removed at exit unless `RNFS_FUZZ_KEEP_SCRATCH` is set; those of
//! dead fuzzing processes are removed at start) and is put back in its initial state every
//! [`RESET_EVERY`] inputs, since calls change it. Needs root (the local backend opens file
//! handles, which takes `CAP_DAC_READ_SEARCH`).
//!
//! Checks, besides "no panic, no overflow":
//! * a reply is a well-formed RPC reply (it decodes) to the call's xid, and its record length is
//!   what the head and tail add up to;
//! * a non-idempotent NFS call sent again from the same client (same xid, same arguments) gets the
//!   same reply, byte for byte, from the duplicate request cache.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rnfs_server::config::{ClientRule, Config, Limits};
use rnfs_server::{Export, ExportTable};
use rnfs_server::{Origin, Outcome, Reply, Service, Tail, Transport};
use rnfs_storage::local::LocalFs;
use rnfs_storage::{Backend, Identity};

/// Inputs between two resets of the scratch export.
const RESET_EVERY: u64 = 2000;
const EXPORT_ID: u32 = 1;

struct World {
    service: Service,
    backend: Arc<LocalFs>,
    export: PathBuf,
    /// Handles of the initial objects (see `rnfs_fuzz::dispatch`); renewed at each reset.
    handles: Mutex<Vec<Vec<u8>>>,
    runs: AtomicU64,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let tmp = std::env::temp_dir();
        remove_stale_scratch(&tmp);
        let base = tmp.join(format!("rnfs-fuzz-dispatch-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let _ = SCRATCH.set(base.clone());
        // libFuzzer ends with exit(3) (time limit, crash report): remove the scratch directory
        // then, unless asked to keep it for a look.
        if std::env::var_os("RNFS_FUZZ_KEEP_SCRATCH").is_none() {
            // SAFETY: registers a plain `extern "C" fn()` with atexit(3).
            unsafe {
                libc::atexit(remove_scratch);
            }
        }
        let export = base.join("export");
        std::fs::create_dir_all(&export).expect("create the scratch export");
        let key = rnfs_storage::handle::HandleKey::from_bytes([0x42; 32]);
        let backend = Arc::new(
            LocalFs::new(EXPORT_ID, &export, key)
                .expect("LocalFs on the scratch export (the dispatch target needs root)"),
        );
        let config = Config::single_export(export.clone());
        let rules = config.exports[0]
            .clients
            .iter()
            .map(|c| ClientRule::from_config(c).expect("default rules"))
            .collect();
        let table = ExportTable::from_exports(vec![Arc::new(Export {
            id: EXPORT_ID,
            mount_path: "/export".into(),
            backend: backend.clone(),
            rules,
        })]);
        let limits = Limits {
            // Keep the cache small so eviction runs too.
            drc_entries_max: 512,
            drc_bytes_max: 256 << 10,
            ..Limits::default()
        };
        let world = World {
            service: Service::new(table, limits, [0x5a; 8]),
            backend,
            export,
            handles: Mutex::new(Vec::new()),
            runs: AtomicU64::new(0),
        };
        world.reset();
        world
    })
}

/// This process's scratch directory, for [`remove_scratch`].
static SCRATCH: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_scratch() {
    if let Some(dir) = SCRATCH.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Removes the scratch directories of fuzzing processes that are gone.
fn remove_stale_scratch(tmp: &Path) {
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("rnfs-fuzz-dispatch-"))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl World {
    /// Puts the export back in its initial state and renews the handles.
    fn reset(&self) {
        use std::os::unix::fs::PermissionsExt;
        let set_mode = |p: &Path, m: u32| {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
        };
        set_mode(&self.export, 0o777);
        let _ = std::os::unix::fs::chown(&self.export, Some(1000), Some(1000));
        if let Ok(entries) = std::fs::read_dir(&self.export) {
            for e in entries.flatten() {
                let p = e.path();
                if p.symlink_metadata().is_ok_and(|m| m.is_dir()) {
                    set_mode(&p, 0o777);
                    let _ = std::fs::remove_dir_all(&p);
                } else {
                    let _ = std::fs::remove_file(&p);
                }
            }
        }
        let data: Vec<u8> = (0..(96u32 << 10)).map(|i| (i % 251) as u8).collect();
        std::fs::write(self.export.join("f"), data).expect("scratch file");
        std::fs::create_dir(self.export.join("d")).expect("scratch dir");
        std::os::unix::fs::symlink("f", self.export.join("l")).expect("scratch symlink");
        std::fs::write(self.export.join("d/g"), b"g").expect("scratch file in dir");
        let fifo =
            std::ffi::CString::new(self.export.join("p").into_os_string().into_encoded_bytes())
                .expect("path without NUL");
        // SAFETY: mkfifo(3) with a valid NUL-terminated path.
        unsafe {
            libc::mkfifo(fifo.as_ptr(), 0o666);
        }
        for p in ["f", "d", "l", "d/g", "p"] {
            let p = self.export.join(p);
            let _ = std::os::unix::fs::lchown(&p, Some(1000), Some(1000));
            if !p.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
                set_mode(&p, 0o775);
            }
        }
        let root = Identity::root();
        let b = &self.backend;
        let rh = b.root();
        // The backend takes verified handles only: verify as the server does.
        let look = |dir: &rnfs_storage::FileHandle, name: &[u8]| {
            b.verify(dir)
                .and_then(|dir| b.lookup(&root, &dir, name))
                .map(|(h, _)| h)
                .unwrap_or_else(|e| panic!("scratch lookup {:?}: {e}", name))
        };
        let d = look(&rh, b"d");
        let handles = vec![
            rh.as_bytes().to_vec(),
            look(&rh, b"f").as_bytes().to_vec(),
            d.as_bytes().to_vec(),
            look(&rh, b"l").as_bytes().to_vec(),
            look(&d, b"g").as_bytes().to_vec(),
            look(&rh, b"p").as_bytes().to_vec(),
        ];
        *self.handles.lock().unwrap_or_else(|e| e.into_inner()) = handles;
    }
}

/// The reply as sent: head (after the record marker), then the tail and its padding.
fn wire(reply: &Reply) -> Vec<u8> {
    let mut v = reply.head[Reply::MARKER_BYTES..].to_vec();
    match &reply.tail {
        Tail::None => {}
        Tail::Bytes(b) => v.extend_from_slice(b),
        // Spliced data stays in the pipe; stand-in bytes of its length.
        Tail::Spliced { len, .. } => v.resize(v.len() + len, 0),
    }
    v.resize(v.len() + rnfs_xdr::pad_len(reply.tail_len()), 0);
    v
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let run = w.runs.fetch_add(1, Ordering::Relaxed);
    if run > 0 && run.is_multiple_of(RESET_EVERY) {
        w.reset();
    }
    let handles = w.handles.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let Some(req) = rnfs_fuzz::dispatch::request(data, &handles) else {
        return;
    };
    // A new client address per input, so the duplicate request cache never answers for an
    // earlier input (which would hide the procedure's code from the fuzzer).
    let n = (run % (1 << 24)) as u32;
    let peer = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from((127 << 24) | n)),
        40_000 + (n % 1000) as u16,
    );
    let origin = Origin {
        peer,
        transport: if req.udp {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        conn_id: run,
    };
    let message = Bytes::from(req.message);
    let mut reply = Reply::new();
    let outcome = w
        .service
        .handle_record(message.clone(), origin, run * 10, &mut reply);
    if outcome == Outcome::Drop {
        return;
    }
    let sent = wire(&reply);
    assert_eq!(
        sent.len(),
        reply.message_len(),
        "the record marker would announce another length"
    );
    let parsed = rnfs_oncrpc::decode_reply(Bytes::from(sent.clone()));
    let (xid, _, _) = parsed.unwrap_or_else(|e| panic!("the server's reply does not parse: {e}"));
    assert_eq!(
        &xid.to_be_bytes()[..],
        &message[..4],
        "reply to another xid"
    );

    // The same call again from the same client: a non-idempotent NFS call is answered from the
    // duplicate request cache, identically.
    let Ok((header, _)) = rnfs_oncrpc::decode_call(message.clone()) else {
        return;
    };
    if rnfs_server::drc_covers(header.prog, header.vers, header.proc_num) {
        let hits = w.service.drc.stats.hits.load(Ordering::Relaxed);
        let mut again = Reply::new();
        let outcome = w
            .service
            .handle_record(message, origin, run * 10 + 1, &mut again);
        assert!(
            outcome == Outcome::Reply,
            "a completed call's copy was dropped"
        );
        assert_eq!(wire(&again), sent, "the retransmission got another reply");
        assert!(
            w.service.drc.stats.hits.load(Ordering::Relaxed) > hits,
            "the retransmission was executed again"
        );
    }
});
