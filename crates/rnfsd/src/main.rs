//! `rnfsd`: serve local directories to NFSv3 and NFSv4.1 clients.
#![forbid(unsafe_code)]

mod ctl;

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use rnfs_server::config::Config;
use rnfs_server::{PortmapMode, ServeOptions};

/// A user-space NFS server: NFSv3 (RFC 1813) with MOUNT, NLM and a portmapper over TCP and UDP,
/// and NFSv4.1 (RFC 8881) over TCP, on one port.
#[derive(Parser, Debug)]
#[command(name = "rnfsd", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

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
    #[command(verbatim_doc_comment)]
    Serve(ServeArgs),

    /// Ask a running rnfsd what it is doing (through its control socket).
    ///
    /// Commands:
    ///   status                      version, uptime, exports, listeners, connections, loans, stalls
    ///   connections                 each client connection: peer, auth, age, idle, requests, bytes
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
    ///   log                         the log filter and the clients under per-client debug
    ///   log FILTER                  switch the log filter (e.g. 'rnfs_server=debug')
    ///   log --client IP debug|off   log requests from IP at debug level, or stop
    #[command(verbatim_doc_comment)]
    Ctl(CtlArgs),
}

#[derive(clap::Args, Debug)]
struct CtlArgs {
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
struct ServeArgs {
    /// Directory to export (omit when --config lists exports).
    dir: Option<PathBuf>,

    /// TOML configuration file: listeners, exports with per-client rules, limits.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,

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
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| args.log.clone());
    rnfs_server::init_logging(
        &filter,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    )
    .map_err(anyhow::Error::msg)?;

    let mut config = match (&args.config, &args.dir) {
        (Some(path), None) => Config::load(path)?,
        (None, Some(dir)) => Config::single_export(dir.clone()),
        (Some(_), Some(_)) => bail!("give either DIR or --config, not both"),
        (None, None) => bail!("nothing to export: give a DIR or --config FILE (see --help)"),
    };
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
        // Requests run on the server's own worker pool; tokio's blocking threads only serve the
        // admin socket, export reloads, rpcbind registration and the flush at shutdown.
        .max_blocking_threads(8)
        .build()
        .context("cannot start the async runtime")?;
    let progress = args
        .progress
        .map(|secs| std::time::Duration::from_secs(secs.max(1)));
    runtime.block_on(async move {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        if let Some(every) = progress {
            tokio::spawn(async move {
                if let Ok(running) = ready_rx.await {
                    // A plain thread: it sleeps and prints, and never touches the reactor.
                    let _ = std::thread::Builder::new()
                        .name("rnfsd-progress".into())
                        .spawn(move || ctl::progress_loop(&running, every));
                }
            });
        }
        rnfs_server::serve_reporting(opts, Some(ready_tx), shutdown_signal())
            .await
            .map_err(anyhow::Error::from)
    })
}

async fn shutdown_signal() {
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
