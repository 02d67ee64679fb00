//! Assembles a running exporter from a config: store, pollers, HTTP server, reload. Shared by
//! `main` and the integration tests so both run the same code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::{oneshot, Mutex};
use tokio_util::task::AbortOnDropHandle;

use crate::config::{self, Config};
use crate::model::ReloadError;
use crate::poller::Poller;
use crate::server::{self, App, ReloadFn, ServerSettings};
use crate::shard::Shard;
use crate::store::Store;
use crate::web::WebSettings;

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
        Self::start_with(config, config_path, Shard::ALL, |p| p)
    }

    /// Like [`start`](Self::start), polling only the accounts of `shard` (also after reloads),
    /// and letting tests tune the poller.
    pub fn start_with(
        config: Config,
        config_path: Option<PathBuf>,
        shard: Shard,
        tune: impl FnOnce(Poller) -> Poller,
    ) -> Arc<Exporter> {
        let mut store = Store::new(config.poll.max_age);
        store.shard = shard.is_sharded().then(|| (shard.ordinal(), shard.total()));
        store.demo = config_path.is_none();
        let store = Arc::new(store);
        store.config_loaded(None);
        let state_dir = config.server.state_dir.clone();
        let poller = tune(Poller::new(store.clone(), shard, state_dir));
        poller.apply(&config);
        let current = Mutex::new(config);
        Arc::new(Exporter {
            store,
            poller,
            config_path,
            current,
        })
    }

    /// Re-reads the config file. A bad file is refused (the reason logged and returned) and the
    /// running config kept.
    pub async fn reload(&self) -> Result<String, ReloadError> {
        let Some(path) = self.config_path.clone() else {
            return Ok("demo mode: no config file to reload".into());
        };
        let load = move || crate::sources::registry::loader().load(&path);
        let loaded = tokio::task::spawn_blocking(load).await;
        let new = match loaded.map_err(|e| ReloadError(Box::new(e)))? {
            Ok(new) => new,
            Err(e) => {
                self.store.config_loaded(Some(e.to_string()));
                tracing::error!(error = %e, "config reload refused; keeping the running config");
                return Err(ReloadError(Box::new(e)));
            }
        };
        self.store.config_loaded(None);
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

/// A running HTTP server.
pub struct ServerHandle {
    pub addr: SocketAddr,
    /// The web config in force; [`WebSettings::reload`] re-reads it (SIGHUP).
    pub web: Arc<WebSettings>,
    shutdown: oneshot::Sender<()>,
    /// Dropping the handle stops the server at once.
    task: AbortOnDropHandle<()>,
}

impl ServerHandle {
    /// Stops accepting, lets open requests finish, and waits.
    pub async fn shutdown(self) {
        drop(self.shutdown); // the server's signal to close
        let _ = self.task.await;
    }
}

/// Binds `listen` and serves the exporter's endpoints; an error says why it cannot (the web
/// config file, or the address).
pub async fn serve(
    exporter: Arc<Exporter>,
    listen: &str,
    server_config: &config::ServerConfig,
) -> Result<ServerHandle, String> {
    let web = Arc::new(WebSettings::load(server_config.web_config_file.clone())?);
    let bound = TcpListener::bind(listen).await;
    let bound = bound.and_then(|listener| Ok((listener.local_addr()?, listener)));
    let (addr, listener) = bound.map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let reload_target = exporter.clone();
    let reload: ReloadFn = Arc::new(move || {
        let target = reload_target.clone();
        // The server answers with the error's text; the reason is logged in `reload`.
        Box::pin(async move { target.reload().await })
    });
    let settings = ServerSettings {
        max_connections: server_config.max_connections,
        header_read_timeout: server_config.header_read_timeout,
        idle_timeout: server_config.idle_timeout,
        send_timeout: server_config.send_timeout,
        enable_lifecycle: server_config.enable_lifecycle,
    };
    let app = App::new(exporter.store.clone(), reload, settings, web.clone());
    // Sending or dropping `tx` closes the server.
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, app, async move {
        let _ = rx.await;
    }));
    Ok(ServerHandle {
        addr,
        web,
        shutdown: tx,
        task: AbortOnDropHandle::new(task),
    })
}
