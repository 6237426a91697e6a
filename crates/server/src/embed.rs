//! Running a server inside another program: tests, benchmarks and embedders that bring their own
//! backend (e.g. a fault-injecting wrapper) get a server on its own runtime with one call.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rnfs_storage::Backend;

use crate::config::{ClientRule, Config, Limits};
use crate::exports::{Export, ExportTable};
use crate::{serve_with, PortmapMode, Running, ServeError, ServeOptions};

/// A server running in this process. Dropping it stops it (gracefully, like SIGTERM).
pub struct Embedded {
    pub running: Running,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
}

impl Embedded {
    /// Serves `backend` as export `id`, mounted as `mount_path`, to loopback clients (the default
    /// rules of `rnfsd serve DIR`), on a free port of 127.0.0.1, with `limits`.
    pub fn start(
        backend: Arc<dyn Backend>,
        id: u32,
        mount_path: &str,
        local_path: PathBuf,
        limits: Limits,
        state_dir: PathBuf,
    ) -> Result<Embedded, ServeError> {
        let mut config = Config::single_export(local_path.clone());
        config.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        config.limits = limits;
        let rules = config.exports[0]
            .clients
            .iter()
            .map(ClientRule::from_config)
            .collect::<Result<_, _>>()?;
        // Behind the gate, as `ExportTable::build` serves every export (see crate::backend_gate).
        let busy_max = config
            .limits
            .export_fs_workers_max
            .min(config.limits.fs_workers_max);
        let backend: Arc<dyn Backend> =
            Arc::new(crate::backend_gate::Gated::new(backend, id, busy_max));
        let export = Arc::new(Export {
            id,
            mount_path: mount_path.to_owned(),
            backend,
            rules,
        });
        let opts = ServeOptions {
            config,
            state_dir,
            ready_file: None,
            portmap: PortmapMode::Off,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .max_blocking_threads(crate::RUNTIME_BLOCKING_THREADS_MAX)
            .enable_all()
            .build()
            .map_err(|e| ServeError::Thread("runtime", e))?;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(serve_with(
            opts,
            ExportTable::from_exports(vec![export]),
            Some(ready_tx),
            async {
                let _ = stop_rx.await;
            },
        ));
        let running = match runtime.block_on(ready_rx) {
            Ok(r) => r,
            // The server ended before it was ready: its own error says why.
            Err(_) => {
                return Err(match runtime.block_on(server) {
                    Ok(Err(e)) => e,
                    _ => ServeError::NoExports,
                })
            }
        };
        Ok(Embedded {
            running,
            runtime: Some(runtime),
            stop: Some(stop_tx),
            server: Some(server),
        })
    }

    /// The TCP (and UDP) address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.running.listening[0]
    }

    /// Stops the server and returns how it ended.
    pub fn stop(mut self) -> Result<(), ServeError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServeError> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        match (self.runtime.take(), self.server.take()) {
            (Some(rt), Some(server)) => {
                let r = rt.block_on(server).unwrap_or(Ok(()));
                rt.shutdown_timeout(std::time::Duration::from_secs(5));
                r
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Embedded {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
