//! `rnfsd`: serve local directories to NFSv3 and NFSv4.1 clients.
#![forbid(unsafe_code)]

mod ctl;
mod generate;
mod notify;
mod top;

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use rnfs_server::config::Config;
use rnfs_server::{PortmapMode, ServeOptions};

/// A user-space NFS server: NFSv3 (RFC 1813) with MOUNT, NLM and a portmapper over TCP and UDP,
/// and NFSv4.1 (RFC 8881) over TCP, on one port.
#[derive(Parser, Debug)]
#[command(name = "rnfsd", version, about, long_about = None, after_long_help = SIGNALS)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `rnfsd --help` and the man page say about signals and systemd.
const SIGNALS: &str = "\
Signals (rnfsd serve): SIGHUP re-reads the exports (the --exports or --config file) and swaps the \
export table, as `rnfsd ctl exports reload` does; a file that does not parse, or has no exports, \
leaves the current table in place and the log says why. SIGTERM or SIGINT stops the server \
(requests in flight finish first), with exit status 0. A server whose CephFS client the cluster \
evicted (fenced: another head counted it dead, or an admin evicted it) stops by itself with \
status 1 and says so, so that systemd's Restart=on-failure restarts it.

Under systemd (Type=notify), rnfsd sends READY=1 once every listener is bound and serving, \
RELOADING=1 then READY=1 around a reload, and STOPPING=1 when it stops.

The Debian package's files: /etc/rnfsd/rnfsd.toml, /etc/rnfsd/exports, /var/lib/rnfsd (state: \
file-handle key, lock-manager records, control socket), rnfsd.service.";

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve DIR (or the exports of --config) over NFSv3 and NFSv4.1.
    ///
    /// With only DIR: exports DIR read-write to loopback clients (127.0.0.0/8 and ::1) with root
    /// squash, on 127.0.0.1:2049, TCP and UDP; NFS (v3 and v4.1), MOUNT, NLM (file locks), NSM and
    /// the portmapper all answer on that port. Clients mount DIR's absolute path, e.g.
    /// `mount -t nfs -o vers=3,port=2049,mountport=2049 127.0.0.1:/srv/data /mnt` or
    /// `mount -t nfs -o vers=4.1,port=2049 127.0.0.1:/srv/data /mnt`.
    /// Client lock managers find NLM through port 111 (see --portmap); without it, mount with
    /// `nolock` and locks stay local to each client.
    /// With --exports FILE: the exports of a Linux /etc/exports-style file (see `rnfsd exports`).
    /// With --client and -o: DIR exported to those clients with those exports(5) options, e.g.
    /// `rnfsd serve /srv/data --client 10.0.0.0/8 -o rw,no_root_squash`.
    /// SIGHUP re-reads the exports of --exports or --config, as `rnfsd ctl exports reload`.
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),

    /// Check an exports(5) file and print the export table it makes.
    ///
    /// Syntax as Linux's /etc/exports: `PATH CLIENT(OPTIONS) ...` per line, `\` continues a line,
    /// `#` starts a comment, quoted paths. CLIENT: `*`, an address, CIDR (or a.b.c.d/netmask), a
    /// host name. Defaults as Linux's: ro, root_squash, secure, anonuid/anongid 65534.
    /// Options: ro rw root_squash no_root_squash all_squash no_all_squash anonuid=N anongid=N
    /// secure insecure fsid=N (the export id), and, changing nothing (rnfsd always works so):
    /// sync wdelay no_wdelay subtree_check no_subtree_check hide sec=sys. Refused: async, nohide,
    /// crossmnt, other sec= flavours, netgroups, wildcard host names, anything else.
    #[command(verbatim_doc_comment)]
    Exports(ExportsArgs),

    /// Ask a running rnfsd what it is doing (through its control socket).
    ///
    /// Commands:
    ///   status                      version, uptime, exports, listeners, connections, loans, stalls
    ///   connections                 each client connection: peer, auth, age, idle, requests, bytes
    ///   client totals               each client address since the start: TCP connections open
    ///                               and closed, requests, bytes (UDP: all clients together)
    ///   requests                    every request in flight: xid, procedure, age, what it waits on
    ///   loans                       READ data on loan: owner, file, range, bytes, age
    ///   locks                       every tracked lock: holder thread, call site, held for, waiters
    ///   filelocks                   NFS clients' file locks, shares and blocked requests (NLM, v4)
    ///   nfs4 clients                NFSv4 clients: owner, lease age, sessions, busy slots, opens,
    ///                               locks, delegations, revoked state, back channel up
    ///   nfs4 delegations            NFSv4 delegations: holder, file, kind, recall deadline;
    ///                               back-channel call counts
    ///   nfs4 copies                 NFSv4.2 asynchronous copies: client, state, bytes copied of
    ///                               total, age, source and destination handles; COPY counts
    ///   nfs4 expire CLIENTID        expire an NFSv4 client now (its opens and locks are released)
    ///   exports                     the export table and client rules
    ///   exports reload              re-read the --config file and swap the export table
    ///   stats                       per-procedure calls, errors by status, latency percentiles
    ///   stalls                      the watchdog's stall reports
    ///   cluster                     the grace period shared with the other heads of a CephFS
    ///                               ([cluster]): epoch, in grace or not, each head's state
    ///   top [--interval SECS] [--count N]
    ///                               the busiest clients (calls/s, MiB/s in and out) and
    ///                               procedures (calls/s, errors/s, p50, p99), refreshed every
    ///                               SECS seconds (default 2); N refreshes, then exit
    ///   log                         the log filter and the clients under per-client debug
    ///   log FILTER                  switch the log filter (e.g. 'rnfs_server=debug')
    ///   log --client IP debug|off   log requests from IP at debug level, or stop
    ///
    /// Options may stand before or after the command, e.g. `rnfsd ctl status --json`; words after
    /// `--` are the command's.
    #[command(verbatim_doc_comment)]
    Ctl(CtlArgs),

    /// Write man pages or shell completions (for packaging: packaging/build-deb).
    #[command(hide = true, subcommand)]
    Generate(GenerateWhat),
}

#[derive(Subcommand, Debug)]
enum GenerateWhat {
    /// Man pages, section 8: rnfsd.8 and rnfsd-SUBCOMMAND.8 into DIR.
    Man {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// The completion script for SHELL into DIR.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub(crate) struct CtlArgs {
    /// The server's state directory (its control socket is STATE_DIR/rnfsd.sock).
    /// [default: as for `rnfsd serve`]
    #[arg(long, value_name = "DIR", conflicts_with = "socket")]
    state_dir: Option<PathBuf>,

    /// The control socket itself.
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,

    /// Print the server's JSON reply instead of tables.
    #[arg(long)]
    json: bool,

    /// The command and its arguments (see above).
    #[arg(
        required = true,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    command: Vec<String>,
}

#[derive(clap::Args, Debug)]
struct ExportsArgs {
    /// The exports(5) file to check.
    #[arg(long, value_name = "FILE")]
    check: PathBuf,
}

#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Directory to export (omit when --config or --exports lists exports).
    dir: Option<PathBuf>,

    /// TOML configuration file: listeners, exports with per-client rules, limits.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

    /// Exports in Linux's /etc/exports syntax (see `rnfsd exports --help`); with --config, that
    /// file gives everything but the exports. `rnfsd ctl exports reload` re-reads it.
    #[arg(long, value_name = "FILE", conflicts_with = "dir")]
    exports: Option<PathBuf>,

    /// With DIR: a client allowed to mount it (repeatable; `*`, address, CIDR or host name).
    /// [default: loopback, 127.0.0.0/8 and ::1]
    #[arg(long, value_name = "MATCH", requires = "dir")]
    client: Vec<String>,

    /// With DIR: exports(5) options for its clients, e.g. `rw,no_root_squash,anonuid=1000`
    /// (starting from rw, root_squash, insecure; see `rnfsd exports --help`).
    #[arg(short = 'o', value_name = "OPTIONS", requires = "dir")]
    options: Option<String>,

    /// Address to listen on, TCP and UDP (repeatable; port 0 picks a free port).
    /// [default: 127.0.0.1:2049]
    #[arg(long, short = 'l', value_name = "ADDR:PORT")]
    listen: Vec<std::net::SocketAddr>,

    /// Where persistent state lives (the file-handle key that keeps handles valid across restarts).
    /// [default: /var/lib/rnfsd as root, else $XDG_STATE_HOME/rnfsd or ~/.local/state/rnfsd]
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Portmapper (port 111): `auto` registers with a running rpcbind, or serves port 111 itself
    /// when run as root and none runs; `on` always serves port 111; `off` does neither.
    #[arg(long, value_enum, default_value_t = PortmapArg::Auto)]
    portmap: PortmapArg,

    /// Once listening, write the bound addresses here (`tcp ADDR` / `udp ADDR` lines).
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,

    /// Log filter (tracing-subscriber syntax, e.g. `debug` or `rnfs_server=debug`); RUST_LOG also works.
    /// Switch it at run time with `rnfsd ctl log FILTER`.
    #[arg(long, default_value = "info")]
    log: String,

    /// Serve Prometheus metrics on this address (`GET http://ADDR/metrics`).
    #[arg(long, value_name = "ADDR:PORT")]
    metrics: Option<std::net::SocketAddr>,

    /// Print a one-line summary (requests/s, MiB/s in and out, connections) every SECS seconds.
    #[arg(long, value_name = "SECS", num_args = 0..=1, default_missing_value = "5")]
    progress: Option<u64>,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum PortmapArg {
    Auto,
    On,
    Off,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
        Command::Ctl(args) => ctl::run(args, default_state_dir),
        Command::Exports(args) => check_exports(&args.check),
        Command::Generate(what) => generate(what),
    }
}

fn generate(what: GenerateWhat) -> anyhow::Result<()> {
    match what {
        GenerateWhat::Man { dir } => {
            for page in generate::man_pages(Cli::command(), &dir)? {
                println!("{}", page.display());
            }
        }
        GenerateWhat::Completions { shell, dir } => {
            let path = generate::completions(Cli::command(), shell, &dir)?;
            println!("{}", path.display());
        }
    }
    Ok(())
}

/// `rnfsd exports --check FILE`: the table the file makes, or the line at fault (exit 1).
fn check_exports(path: &std::path::Path) -> anyhow::Result<()> {
    let exports = rnfs_server::config::read_exports_file(path)?;
    // `serve --exports` refuses a file that exports nothing; the check says so first.
    if exports.is_empty() {
        bail!("{}: no exports in it", path.display());
    }
    print!("{}", describe_exports(&exports));
    Ok(())
}

/// One block per export: its path and id, then a row per client rule, in the order they are tried.
fn describe_exports(exports: &[rnfs_server::config::ExportConfig]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for e in exports {
        let id = e.id.map_or_else(|| "derived".to_owned(), |i| i.to_string());
        let _ = writeln!(out, "{} (id {id})", e.path.display());
        for c in &e.clients {
            let squash = match (c.all_squash, c.root_squash) {
                (true, _) => "all_squash",
                (false, true) => "root_squash",
                (false, false) => "no_root_squash",
            };
            let access = match c.access {
                rnfs_server::config::Access::Ro => "ro",
                rnfs_server::config::Access::Rw => "rw",
            };
            let port = if c.secure { "secure" } else { "insecure" };
            let _ = writeln!(
                out,
                "  {:<24} {access} {squash} anonuid={} anongid={} {port}",
                c.matches, c.anonuid, c.anongid
            );
        }
    }
    out
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| args.log.clone());
    rnfs_server::init_logging(
        &filter,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )
    .map_err(anyhow::Error::msg)?;

    check_privileges()?;
    let mut config = match (&args.config, &args.dir) {
        (Some(path), None) => Config::load(path)?,
        (None, Some(dir)) => {
            Config::single_export_with(dir.clone(), &args.client, args.options.as_deref())?
        }
        (Some(_), Some(_)) => bail!("give either DIR or --config, not both"),
        (None, None) if args.exports.is_some() => Config::empty(),
        (None, None) => {
            bail!("nothing to export: give a DIR, --exports FILE or --config FILE (see --help)")
        }
    };
    if let Some(path) = &args.exports {
        config = config.with_exports_file(path)?;
    }
    if !args.listen.is_empty() {
        config.listen = args.listen.clone();
    }
    if args.metrics.is_some() {
        config.metrics = args.metrics;
    }
    let state_dir = args
        .state_dir
        .clone()
        .or_else(|| config.state_dir.clone())
        .unwrap_or_else(default_state_dir);
    let opts = ServeOptions {
        config,
        state_dir,
        ready_file: args.ready_file.clone(),
        portmap: match args.portmap {
            PortmapArg::Auto => PortmapMode::Auto,
            PortmapArg::On => PortmapMode::Serve,
            PortmapArg::Off => PortmapMode::Off,
        },
    };

    match rnfs_sys::raise_open_files_limit() {
        Ok(n) => tracing::debug!(open_files_max = n, "raised the open-file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open-file limit"),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rnfsd")
        // Requests run on the server's own worker pool (or in place); tokio's blocking threads
        // serve the admin socket, export reloads, rpcbind registration, the flush at shutdown,
        // and take over a runtime thread's work while it runs a call in place.
        .max_blocking_threads(rnfs_server::RUNTIME_BLOCKING_THREADS_MAX)
        .build()
        .context("cannot start the async runtime")?;
    let progress = args
        .progress
        .map(|secs| std::time::Duration::from_secs(secs.max(1)));
    let notifier = notify::Notifier::from_env().map(Arc::new);
    runtime.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        // Before serving: a SIGHUP that arrives while the server starts is then a reload once it
        // serves, not the default action (exit).
        let hangup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(when_serving(ready_rx, progress, notifier.clone(), hangup));
        rnfs_server::serve_reporting(opts, Some(ready_tx), shutdown_signal(notifier))
            .await
            .map_err(anyhow::Error::from)
    })
}

/// Once the server serves: tells systemd, starts the progress line, then reloads the exports on
/// every SIGHUP until the process ends.
async fn when_serving(
    ready: tokio::sync::oneshot::Receiver<rnfs_server::Running>,
    progress: Option<std::time::Duration>,
    notifier: Option<Arc<notify::Notifier>>,
    mut hangup: tokio::signal::unix::Signal,
) {
    let Ok(running) = ready.await else {
        return; // the start failed; serve() reports why
    };
    if let Some(n) = &notifier {
        n.send(&format!(
            "READY=1\n{}",
            notify::status_line(&format!(
                "serving {} exports on {}",
                running.service.exports().len(),
                listening(&running)
            ))
        ));
    }
    if let Some(every) = progress {
        let running = running.clone();
        // A plain thread: it sleeps and prints, and never touches the reactor.
        let _ = std::thread::Builder::new()
            .name("rnfsd-progress".into())
            .spawn(move || ctl::progress_loop(&running, every));
    }
    while hangup.recv().await.is_some() {
        reload_on_hangup(&running, notifier.as_deref()).await;
    }
}

/// SIGHUP: the same reload as `rnfsd ctl exports reload`, its outcome logged (and told to
/// systemd); a failed reload keeps the current table.
async fn reload_on_hangup(running: &rnfs_server::Running, notifier: Option<&notify::Notifier>) {
    if let Some(n) = notifier {
        n.reloading();
    }
    let status = match running.exports_reload.reload().await {
        Ok(outcome) => {
            let count = |k: &str| outcome[k].as_array().map_or(0, Vec::len);
            tracing::info!(
                added = count("added"),
                changed = count("changed"),
                removed = count("removed"),
                unchanged = count("unchanged"),
                "SIGHUP: exports reloaded"
            );
            format!(
                "serving {} exports on {} (reloaded)",
                count("added") + count("changed") + count("unchanged"),
                listening(running)
            )
        }
        Err(why) => {
            tracing::warn!(error = %why, "SIGHUP: exports not reloaded; the current table stays");
            format!("reload failed, the previous exports stay: {why}")
        }
    };
    if let Some(n) = notifier {
        n.send(&format!("READY=1\n{}", notify::status_line(&status)));
    }
}

/// The TCP addresses, for a status line.
fn listening(running: &rnfs_server::Running) -> String {
    let addrs: Vec<String> = running.listening.iter().map(|a| a.to_string()).collect();
    addrs.join(" ")
}

async fn shutdown_signal(notifier: Option<Arc<notify::Notifier>>) {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = int.recv() => {},
            }
        }
        _ => {
            tracing::error!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
    if let Some(n) = notifier {
        n.send("STOPPING=1");
    }
}

/// The capabilities rnfsd uses, as `setcap` names them, and what for. The file-system ones are
/// the kernel's fs set, which it clears while a worker acts as a non-root caller and restores
/// for root callers (no_root_squash) and the server's own handle resolution.
const CAPABILITIES: [(&str, &str); 10] = [
    (
        "cap_dac_read_search",
        "open files by handle (open_by_handle_at)",
    ),
    ("cap_setuid", "act as each caller (setfsuid)"),
    (
        "cap_setgid",
        "act as each caller's groups (setfsgid, setgroups)",
    ),
    (
        "cap_dac_override",
        "act as root for root callers (no_root_squash)",
    ),
    ("cap_fowner", "act as root for root callers"),
    ("cap_fsetid", "act as root for root callers"),
    (
        "cap_chown",
        "act as root for root callers (SETATTR of owners)",
    ),
    ("cap_mknod", "MKNOD of devices for root callers"),
    (
        "cap_lease",
        "NFSv4 delegations on others' files (file leases)",
    ),
    ("cap_net_bind_service", "listening on a port below 1024"),
];

/// `CAP_DAC_READ_SEARCH` (linux/capability.h): without it no file handle can be opened.
const CAP_DAC_READ_SEARCH_BIT: u32 = 2;

/// Stops a start that cannot work with what to do about it, instead of the kernel's bare
/// `Operation not permitted` from the first `open_by_handle_at`.
fn check_privileges() -> anyhow::Result<()> {
    if rnfs_server::running_as_root() || effective_capability(CAP_DAC_READ_SEARCH_BIT) {
        return Ok(());
    }
    bail!("{}", privilege_help())
}

/// Whether the process holds capability `bit` in its effective set (`CapEff` of /proc/self/status;
/// unknown counts as held, so a kernel without it is left to decide).
fn effective_capability(bit: u32) -> bool {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return true;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_none_or(|caps| caps & (1 << bit) != 0)
}

fn privilege_help() -> String {
    let names: Vec<&str> = CAPABILITIES.iter().map(|(n, _)| *n).collect();
    let upper: Vec<String> = names.iter().map(|n| n.to_uppercase()).collect();
    let why: String = CAPABILITIES
        .iter()
        .map(|(n, w)| format!("  {n:<22} {w}\n"))
        .collect();
    format!(
        "cannot open file handles: open_by_handle_at needs CAP_DAC_READ_SEARCH, which this \
         process lacks.\nrnfsd runs as root, or with these capabilities:\n{why}\
         Either run it as root (sudo rnfsd serve ...), or give a dedicated user the capabilities, \
         with systemd:\n  User=rnfsd\n  AmbientCapabilities={}\n\
         or on the binary itself (every user allowed to run it gets them, so restrict it first, \
         e.g. chgrp rnfsd and chmod 0750):\n  sudo setcap {}+ep $(command -v rnfsd)",
        upper.join(" "),
        names.join(",")
    )
}

fn default_state_dir() -> PathBuf {
    if rnfs_server::running_as_root() {
        return PathBuf::from("/var/lib/rnfsd");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME") {
        return PathBuf::from(x).join("rnfsd");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/state/rnfsd"),
        None => PathBuf::from(".rnfsd-state"),
    }
}

#[cfg(test)]
mod tests {
    use super::CAPABILITIES;

    /// The packaged unit's bounding set is exactly the capabilities rnfsd names (and asks for
    /// when started without them): none missing, none extra.
    #[test]
    fn unit_grants_the_named_capabilities() {
        let unit = include_str!("../../../packaging/rnfsd.service");
        let line = unit
            .lines()
            .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
            .expect("the unit sets CapabilityBoundingSet=");
        let mut granted: Vec<String> = line.split_whitespace().map(str::to_lowercase).collect();
        let mut named: Vec<String> = CAPABILITIES.iter().map(|(n, _)| n.to_string()).collect();
        granted.sort();
        named.sort();
        assert_eq!(granted, named);
    }
}
