//! Structured logs: one span per request, a log filter switchable at run time, and per-client
//! debug logging.
//!
//! * Every request runs inside a `request` span with its `xid`, `client` and `proc` (opened by
//!   [`crate::stats::Observed`]), so each event a handler logs says which call it belongs to.
//! * [`init`] installs the process's subscriber: a `tracing_subscriber::fmt` layer behind a
//!   reloadable `EnvFilter` ([`set_filter`] swaps it: `rnfsd ctl log 'rnfs_server=debug'`).
//! * [`set_client_debug`] marks a client address: its requests' spans are opened under the target
//!   [`CLIENT_DEBUG_TARGET`], and the subscriber shows every event at DEBUG or above inside such a
//!   span whatever the global filter says (`rnfsd ctl log --client 127.0.0.2 debug`). One noisy
//!   client can be traced without flooding the log with everyone else's calls.
//!
//! The set of debug clients is a leaf lock (`logging.debug_clients`) consulted only while the set
//! is non-empty; otherwise the request path reads one atomic flag.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, OnceLock};

use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterExt, LevelFilter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, Layer, Registry};

use crate::lockdep::TrackedMutex;

/// The target of request spans of clients under per-client debug.
pub const CLIENT_DEBUG_TARGET: &str = "rnfs_client_debug";
/// Most client addresses under per-client debug at once.
pub const DEBUG_CLIENTS_MAX: usize = 16;

static DEBUG_ANY: AtomicBool = AtomicBool::new(false);
static DEBUG_CLIENTS: LazyLock<TrackedMutex<Vec<IpAddr>>> =
    LazyLock::new(|| TrackedMutex::new("logging.debug_clients", Vec::new()));
static FILTER: OnceLock<reload::Handle<EnvFilter, Registry>> = OnceLock::new();

/// Installs the process's log subscriber (stderr) with `filter` as the initial global filter.
pub fn init(filter: &str, ansi: bool) -> Result<(), String> {
    let env = EnvFilter::try_new(filter).map_err(|e| format!("bad log filter {filter:?}: {e}"))?;
    let (env, handle) = reload::Layer::new(env);
    let per_client = tracing_subscriber::filter::dynamic_filter_fn(|meta, cx| {
        if !DEBUG_ANY.load(Ordering::Relaxed) || *meta.level() > Level::DEBUG {
            return false;
        }
        meta.target() == CLIENT_DEBUG_TARGET
            || cx.lookup_current().is_some_and(|span| {
                span.scope()
                    .any(|s| s.metadata().target() == CLIENT_DEBUG_TARGET)
            })
    })
    .with_max_level_hint(LevelFilter::DEBUG);
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_filter(env.or(per_client));
    tracing_subscriber::registry()
        .with(layer)
        .try_init()
        .map_err(|e| format!("cannot install the log subscriber: {e}"))?;
    let _ = FILTER.set(handle);
    Ok(())
}

/// The global filter now in force, if [`init`] installed the subscriber.
pub fn current_filter() -> Option<String> {
    FILTER.get()?.with_current(|f| f.to_string()).ok()
}

/// Replaces the global filter; returns the new filter as parsed.
pub fn set_filter(filter: &str) -> Result<String, String> {
    let handle = FILTER
        .get()
        .ok_or("the log filter of this process is not switchable (logging::init was not used)")?;
    let new = EnvFilter::try_new(filter).map_err(|e| format!("bad log filter {filter:?}: {e}"))?;
    let shown = new.to_string();
    handle
        .reload(new)
        .map_err(|e| format!("cannot switch the log filter: {e}"))?;
    tracing::info!(filter = %shown, "log filter changed");
    Ok(shown)
}

/// Turns per-client debug logging for `ip` on or off.
pub fn set_client_debug(ip: IpAddr, on: bool) -> Result<(), String> {
    let ip = ip.to_canonical();
    let mut set = DEBUG_CLIENTS.lock();
    if on {
        if !set.contains(&ip) {
            if set.len() >= DEBUG_CLIENTS_MAX {
                return Err(format!(
                    "at most {DEBUG_CLIENTS_MAX} clients can be under debug at once"
                ));
            }
            set.push(ip);
        }
    } else {
        set.retain(|x| *x != ip);
    }
    DEBUG_ANY.store(!set.is_empty(), Ordering::Relaxed);
    drop(set);
    // Callsites cached as "never" under the old state must be asked again.
    tracing::callsite::rebuild_interest_cache();
    tracing::info!(client = %ip, debug = on, "per-client debug logging changed");
    Ok(())
}

/// The clients under per-client debug.
pub fn debug_clients() -> Vec<IpAddr> {
    if !DEBUG_ANY.load(Ordering::Relaxed) {
        return Vec::new();
    }
    DEBUG_CLIENTS.lock().clone()
}

fn client_debugged(ip: IpAddr) -> bool {
    if !DEBUG_ANY.load(Ordering::Relaxed) {
        return false;
    }
    let ip = ip.to_canonical();
    DEBUG_CLIENTS.lock().contains(&ip)
}

/// The span a request runs in (`xid` 0 for a record that is no call).
pub fn request_span(
    xid: u32,
    program: &'static str,
    procedure: &'static str,
    peer: SocketAddr,
) -> tracing::Span {
    if client_debugged(peer.ip()) {
        tracing::span!(target: CLIENT_DEBUG_TARGET, Level::DEBUG, "request", xid = %format_args!("{xid:#x}"), client = %peer, program, procedure)
    } else {
        tracing::debug_span!("request", xid = %format_args!("{xid:#x}"), client = %peer, program, procedure)
    }
}
