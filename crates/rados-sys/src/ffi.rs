//! Raw declarations of the librados calls rnfsd makes (Ceph 16, `rados/librados.h`), loaded at
//! run time with `dlopen` for the same reasons as libcephfs (see `rnfs-cephfs-sys`): rnfsd
//! builds and runs without Ceph, and only a server configured with a `[cluster]` needs
//! `librados.so.2`. The prototypes were written by hand from the header; `tests/header.rs`
//! checks that every name is declared there (when `librados-dev` is installed) and exported by
//! the library, and each line below was compared with `grep -A3 'NAME(' librados.h`.
//!
//! Conventions: calls return 0 (or a count) on success and a negated `errno` on failure.
#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_void};
use std::sync::OnceLock;

/// The shared object's name (package `librados2`).
pub const LIBRARY: &str = "librados.so.2";

/// `rados_t`: a cluster handle.
pub type rados_t = *mut c_void;
/// `rados_ioctx_t`: an I/O context (a pool and namespace).
pub type rados_ioctx_t = *mut c_void;
/// `rados_write_op_t`: a compound write being built.
pub type rados_write_op_t = *mut c_void;

macro_rules! api {
    ($($name:ident: fn($($arg:ty),* $(,)?) $(-> $ret:ty)?;)*) => {
        /// The loaded library and the functions rnfsd calls, under their C names.
        pub struct Api {
            $(pub $name: unsafe extern "C" fn($($arg),*) $(-> $ret)?,)*
            // Last, so it outlives the pointers above.
            _lib: libloading::Library,
        }

        /// The C names of every function in [`Api`].
        pub const API_FUNCTIONS: &[&str] = &[$(stringify!($name)),*];

        impl Api {
            /// Opens the library at `path` and looks every function up.
            pub fn load_from(path: &str) -> Result<Api, String> {
                // SAFETY: opening librados runs its initialisers (C++ static constructors),
                // which have no preconditions on the caller; every program linked with it runs
                // them too.
                let lib = unsafe { libloading::Library::new(path) }.map_err(|e| {
                    format!("{path} not loadable ({e}): install librados2 (apt-get install librados2)")
                })?;
                $(
                    // SAFETY: the pointer type is this function's prototype in the Ceph 16
                    // header (see the module docs); it is kept in the same struct as `lib`,
                    // which is never unloaded while the struct lives.
                    let $name = *unsafe {
                        lib.get::<unsafe extern "C" fn($($arg),*) $(-> $ret)?>(
                            concat!(stringify!($name), "\0").as_bytes(),
                        )
                    }
                    .map_err(|e| format!("librados lacks {} ({e})", stringify!($name)))?;
                )*
                Ok(Api { $($name,)* _lib: lib })
            }
        }
    };
}

api! {
    rados_create: fn(*mut rados_t, *const c_char) -> c_int;
    rados_conf_read_file: fn(rados_t, *const c_char) -> c_int;
    rados_conf_set: fn(rados_t, *const c_char, *const c_char) -> c_int;
    rados_connect: fn(rados_t) -> c_int;
    rados_shutdown: fn(rados_t);
    rados_pool_create: fn(rados_t, *const c_char) -> c_int;
    rados_ioctx_create: fn(rados_t, *const c_char, *mut rados_ioctx_t) -> c_int;
    rados_ioctx_destroy: fn(rados_ioctx_t);
    rados_ioctx_set_namespace: fn(rados_ioctx_t, *const c_char);
    rados_read: fn(rados_ioctx_t, *const c_char, *mut c_char, usize, u64) -> c_int;
    rados_get_last_version: fn(rados_ioctx_t) -> u64;
    rados_create_write_op: fn() -> rados_write_op_t;
    rados_release_write_op: fn(rados_write_op_t);
    rados_write_op_create: fn(rados_write_op_t, c_int, *const c_char);
    rados_write_op_write_full: fn(rados_write_op_t, *const c_char, usize);
    rados_write_op_assert_version: fn(rados_write_op_t, u64);
    rados_write_op_operate: fn(rados_write_op_t, rados_ioctx_t, *const c_char, *mut libc::time_t, c_int) -> c_int;
    rados_remove: fn(rados_ioctx_t, *const c_char) -> c_int;
}

/// The process-wide librados, loaded on first use and never unloaded (its threads and static
/// state must outlive every cluster handle).
pub fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(|| Api::load_from(LIBRARY))
        .as_ref()
        .map_err(Clone::clone)
}
