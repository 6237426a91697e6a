//! The part of librados rnfsd uses (Ceph 16, `rados/librados.h`): its declarations, loaded at
//! run time ([`ffi`]), and a safe wrapper — a cluster handle, an I/O context, whole-object read
//! and compare-and-replace. Every `unsafe` of rnfsd's librados use is here, each with its
//! `// SAFETY:`; `rnfs-rados` builds the cluster grace database on it without any.
//!
//! librados is loaded at run time ([`ffi`]). Every call that waits on the cluster is bounded:
//! the handle is configured with `rados_osd_op_timeout` and `rados_mon_op_timeout`, so a
//! cluster that stops answering fails the call with `ETIMEDOUT` instead of hanging its thread.

pub mod ffi;

use std::ffi::{c_char, CString};
use std::path::Path;
use std::ptr;
use std::sync::Arc;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Load(String),
    #[error("{op} failed: {}", std::io::Error::from_raw_os_error(*errno))]
    Call { op: &'static str, errno: i32 },
    #[error("{op}: argument contains NUL")]
    BadArgument { op: &'static str },
    #[error("{op}: object larger than {max_bytes} bytes")]
    TooLarge { op: &'static str, max_bytes: usize },
}

impl Error {
    /// The errno of a failed call.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::Call { errno, .. } => Some(*errno),
            _ => None,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;

fn check(op: &'static str, rc: i32) -> Result<i32> {
    if rc < 0 {
        Err(Error::Call {
            op,
            errno: rc.saturating_neg(),
        })
    } else {
        Ok(rc)
    }
}

fn c_string(op: &'static str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::BadArgument { op })
}

/// The connected cluster handle, shut down when the last user drops.
struct Handle {
    api: &'static ffi::Api,
    cluster: ffi::rados_t,
}

// SAFETY: a `rados_t` may be used from any thread (librados is thread-safe per handle); the
// handle is only shut down in Drop, when no other reference exists.
unsafe impl Send for Handle {}
// SAFETY: as above; calls through a shared handle are thread-safe in librados.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: the handle was created by `rados_create` and nothing uses it after this.
        unsafe { (self.api.rados_shutdown)(self.cluster) }
    }
}

/// A connection to a Ceph cluster.
#[derive(Clone)]
pub struct Rados {
    handle: Arc<Handle>,
}

impl Rados {
    /// Loads librados, reads `conf`, connects as `client_id` (without `client.`). Calls on the
    /// cluster then fail after `op_timeout_s` seconds instead of waiting forever.
    pub fn connect(conf: &Path, client_id: &str, op_timeout_s: u32) -> Result<Rados> {
        let api = ffi::api().map_err(Error::Load)?;
        let id = c_string("rados_create", client_id)?;
        let mut cluster = ptr::null_mut();
        // SAFETY: valid out-pointer; `id` is NUL-terminated and copied by the library.
        check("rados_create", unsafe {
            (api.rados_create)(&mut cluster, id.as_ptr())
        })?;
        if cluster.is_null() {
            return Err(Error::Call {
                op: "rados_create",
                errno: libc::EIO,
            });
        }
        // Owned from here: any failure below shuts it down.
        let handle = Handle { api, cluster };
        let conf = c_string(
            "rados_conf_read_file",
            conf.to_str().ok_or(Error::BadArgument {
                op: "rados_conf_read_file",
            })?,
        )?;
        // SAFETY: live, not yet connected handle; NUL-terminated path.
        check("rados_conf_read_file", unsafe {
            (api.rados_conf_read_file)(cluster, conf.as_ptr())
        })?;
        let secs = op_timeout_s.max(1).to_string();
        for opt in [
            "rados_osd_op_timeout",
            "rados_mon_op_timeout",
            "client_mount_timeout",
        ] {
            let (o, v) = (
                c_string("rados_conf_set", opt)?,
                c_string("rados_conf_set", &secs)?,
            );
            // SAFETY: live handle, NUL-terminated option and value (copied by the library).
            check("rados_conf_set", unsafe {
                (api.rados_conf_set)(cluster, o.as_ptr(), v.as_ptr())
            })?;
        }
        // SAFETY: configured handle; bounded by client_mount_timeout.
        check("rados_connect", unsafe { (api.rados_connect)(cluster) })?;
        Ok(Rados {
            handle: Arc::new(handle),
        })
    }

    /// Creates pool `name`; one that exists already is fine.
    pub fn create_pool(&self, name: &str) -> Result<()> {
        let n = c_string("rados_pool_create", name)?;
        // SAFETY: connected handle, NUL-terminated name.
        let rc = unsafe { (self.handle.api.rados_pool_create)(self.handle.cluster, n.as_ptr()) };
        match check("rados_pool_create", rc) {
            Err(e) if e.errno() == Some(libc::EEXIST) => Ok(()),
            r => r.map(drop),
        }
    }

    /// An I/O context on `pool`, in `namespace` ("" for the default one).
    pub fn ioctx(&self, pool: &str, namespace: &str) -> Result<IoCtx> {
        let p = c_string("rados_ioctx_create", pool)?;
        let ns = c_string("rados_ioctx_set_namespace", namespace)?;
        let mut io = ptr::null_mut();
        // SAFETY: connected handle, NUL-terminated name, valid out-pointer.
        check("rados_ioctx_create", unsafe {
            (self.handle.api.rados_ioctx_create)(self.handle.cluster, p.as_ptr(), &mut io)
        })?;
        if io.is_null() {
            return Err(Error::Call {
                op: "rados_ioctx_create",
                errno: libc::EIO,
            });
        }
        let ctx = IoCtx {
            rados: self.clone(),
            io,
        };
        // SAFETY: live context; the namespace string is copied.
        unsafe { (self.handle.api.rados_ioctx_set_namespace)(io, ns.as_ptr()) };
        Ok(ctx)
    }
}

/// Object I/O in one pool and namespace. Not `Sync`: `rados_get_last_version` reports the
/// last operation of the context, so one thread uses it at a time (`&mut self`).
pub struct IoCtx {
    rados: Rados,
    io: ffi::rados_ioctx_t,
}

// SAFETY: an I/O context may move between threads; `&mut self` methods keep its use to one
// thread at a time, and it is destroyed (in Drop) before its cluster handle (held by `rados`).
unsafe impl Send for IoCtx {}

impl Drop for IoCtx {
    fn drop(&mut self) {
        // SAFETY: created by `rados_ioctx_create`, not used after this.
        unsafe { (self.api().rados_ioctx_destroy)(self.io) }
    }
}

/// What a compare-and-replace found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replaced {
    Done,
    /// Someone changed the object since it was read (or created it first): read it again.
    Raced,
}

impl IoCtx {
    fn api(&self) -> &'static ffi::Api {
        self.rados.handle.api
    }

    /// The whole object `oid` (at most `max_bytes`) and its version, or `None` if it does not
    /// exist.
    pub fn read_versioned(
        &mut self,
        oid: &str,
        max_bytes: usize,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        const OP: &str = "rados_read";
        let o = c_string(OP, oid)?;
        // One byte more than allowed: a full buffer means "too large".
        let mut buf = vec![0u8; max_bytes + 1];
        // SAFETY: live context, NUL-terminated oid, `buf` writable for the length given.
        let rc = unsafe {
            (self.api().rados_read)(
                self.io,
                o.as_ptr(),
                buf.as_mut_ptr().cast::<c_char>(),
                buf.len(),
                0,
            )
        };
        let n = match check(OP, rc) {
            Err(e) if e.errno() == Some(libc::ENOENT) => return Ok(None),
            r => r?,
        };
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > max_bytes {
            return Err(Error::TooLarge { op: OP, max_bytes });
        }
        buf.truncate(n);
        // SAFETY: live context; reports the version of the object just read.
        let version = unsafe { (self.api().rados_get_last_version)(self.io) };
        Ok(Some((buf, version)))
    }

    /// Replaces object `oid` with `data` if it is still at `version` (`None`: only if it does
    /// not exist yet), atomically.
    pub fn replace(&mut self, oid: &str, version: Option<u64>, data: &[u8]) -> Result<Replaced> {
        const OP: &str = "rados_write_op_operate";
        let o = c_string(OP, oid)?;
        let api = self.api();
        // SAFETY: no preconditions; released below on every path.
        let op = unsafe { (api.rados_create_write_op)() };
        if op.is_null() {
            return Err(Error::Call {
                op: "rados_create_write_op",
                errno: libc::ENOMEM,
            });
        }
        // SAFETY: `op` is a live write op; `data` outlives the operate call that reads it; the
        // op is released exactly once, after it ran.
        let rc = unsafe {
            match version {
                Some(v) => (api.rados_write_op_assert_version)(op, v),
                None => (api.rados_write_op_create)(op, 1, ptr::null()), // LIBRADOS_CREATE_EXCLUSIVE
            }
            (api.rados_write_op_write_full)(op, data.as_ptr().cast::<c_char>(), data.len());
            let rc = (api.rados_write_op_operate)(op, self.io, o.as_ptr(), ptr::null_mut(), 0);
            (api.rados_release_write_op)(op);
            rc
        };
        match check(OP, rc) {
            Ok(_) => Ok(Replaced::Done),
            // ERANGE/EOVERFLOW: the version moved; EEXIST: created meanwhile.
            Err(e)
                if matches!(
                    e.errno(),
                    Some(libc::ERANGE | libc::EOVERFLOW | libc::EEXIST)
                ) =>
            {
                Ok(Replaced::Raced)
            }
            Err(e) => Err(e),
        }
    }

    /// Removes object `oid` (absent is fine).
    pub fn remove(&mut self, oid: &str) -> Result<()> {
        let o = c_string("rados_remove", oid)?;
        // SAFETY: live context, NUL-terminated oid.
        let rc = unsafe { (self.api().rados_remove)(self.io, o.as_ptr()) };
        match check("rados_remove", rc) {
            Err(e) if e.errno() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }
}
