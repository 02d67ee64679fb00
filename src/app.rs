//! Assembles a running exporter from a config: store, pollers, HTTP server, reload. Shared by
//! `main` and the integration tests so both run the same code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, Mutex};
use tokio::task::JoinHandle;

use crate::config::{self, Config};
use crate::poller::Poller;
use crate::server::{self, App, ReloadFn, ServerSettings};
use crate::shard::Shard;
use crate::store::Store;
use crate::web::WebSettings;

/// Why a reload was refused; the running config is kept.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The new file is not a usable config (every problem, each naming its key).
    #[error(transparent)]
    Refused(#[from] config::ConfigError),
    /// The task reading the file ended without an answer (it panicked or was cancelled).
    #[error("reload task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The pollers and the data they publish, plus what is needed to reload.
pub struct Exporter {
    pub store: Arc<Store>,
    pub poller: Poller,
    config_path: Option<PathBuf>,
    current: Mutex<Config>,
}

impl Exporter {
    /// Starts polling every source of `config`. `config_path` is what reloads read (none in
    /// demo mode).
    pub fn start(config: Config, config_path: Option<PathBuf>) -> Arc<Exporter> {
        Self::start_shard(config, config_path, Shard::ALL)
    }

    /// Like [`start`](Self::start), polling only the accounts of `shard` (also after reloads).
    pub fn start_shard(
        config: Config,
        config_path: Option<PathBuf>,
        shard: Shard,
    ) -> Arc<Exporter> {
        let demo = config_path.is_none();
        let exporter = Self::start_with(config, config_path, |p| p.with_shard(shard));
        exporter.store.set_demo_mode(demo);
        exporter
    }

    /// Like [`start`](Self::start), letting tests tune the poller.
    pub fn start_with(
        config: Config,
        config_path: Option<PathBuf>,
        tune: impl FnOnce(Poller) -> Poller,
    ) -> Arc<Exporter> {
        let store = Arc::new(Store::new(config.poll.max_age));
        let poller = tune(Poller::new(store.clone(), crate::http::client()));
        poller.apply(&config);
        Arc::new(Exporter {
            store,
            poller,
            config_path,
            current: Mutex::new(config),
        })
    }

    /// Re-reads the config file. A bad file is refused (the reason logged and returned) and the
    /// running config kept.
    pub async fn reload(&self) -> Result<String, ReloadError> {
        let Some(path) = self.config_path.clone() else {
            return Ok("demo mode: no config file to reload".into());
        };
        let loaded =
            tokio::task::spawn_blocking(move || crate::sources::registry::loader().load(&path))
                .await?;
        match loaded {
            Err(e) => {
                tracing::error!(error = %e, "config reload refused; keeping the running config");
                Err(e.into())
            }
            Ok(new) => {
                let mut current = self.current.lock().await;
                if new.server != current.server {
                    tracing::warn!("server settings changed; they take effect after a restart");
                }
                self.poller.apply(&new);
                let n = new.sources.len();
                *current = new;
                tracing::info!(sources = n, "config reloaded");
                Ok(format!("config reloaded: {n} sources"))
            }
        }
    }
}

/// A running HTTP server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    /// The web config in force; [`WebSettings::reload`] re-reads it (SIGHUP).
    pub web: Arc<WebSettings>,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// Stops accepting, lets open requests finish, and waits.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Binds `listen` and serves the exporter's endpoints.
pub async fn serve(
    exporter: Arc<Exporter>,
    listen: &str,
    server_config: &config::ServerConfig,
) -> Result<ServerHandle, String> {
    let web = Arc::new(WebSettings::load(server_config.web_config_file.clone())?);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let reload_target = exporter.clone();
    let reload: ReloadFn = Arc::new(move || {
        let target = reload_target.clone();
        // The server answers with the error's text; the reason is logged in `reload`.
        Box::pin(async move { target.reload().await })
    });
    let app = App::new(
        exporter.store.clone(),
        reload,
        server_config.enable_lifecycle,
    );
    let settings = ServerSettings {
        max_connections: server_config.max_connections,
        header_read_timeout: server_config.header_read_timeout,
        idle_timeout: server_config.idle_timeout,
        send_timeout: server_config.send_timeout,
        web: web.clone(),
    };
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, app, settings, async move {
        let _ = rx.await;
    }));
    Ok(ServerHandle {
        addr,
        web,
        shutdown: Some(tx),
        task,
    })
}
