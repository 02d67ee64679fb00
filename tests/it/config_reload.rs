//! Reloading a config that is empty, has no accounts, or is half written is refused, and the
//! running accounts keep polling and keep their data.

use crate::common;
use common::Render;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::app::Exporter;
use awareness_exporter::config::ConfigError;
use awareness_exporter::model::ReloadError;
use awareness_exporter::registry;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::{toml_str, Population};

/// A CyberPilot simulator of `users` users and a config file polling it as account `acme`:
/// (server, the file's text, its directory, its path).
async fn config_file(
    users: usize,
) -> (
    awareness_sim::SimServer,
    String,
    tempfile::TempDir,
    std::path::PathBuf,
) {
    let sim = cyberpilot::start(
        Arc::new(Population::generate(3, users)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap();
    let options = CyberPilotOptions::default();
    let text = format!(
        "{}token = {}\n",
        options.account_block(&sim, "acme"),
        toml_str(&options.static_token.clone().unwrap_or_default())
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("exporter.toml");
    std::fs::write(&path, &text).unwrap();
    (sim, text, dir, path)
}

#[tokio::test]
async fn an_empty_or_accountless_reload_is_refused_and_the_old_sources_kept() {
    let (_sim, text, _dir, path) = config_file(20).await;
    let exporter = Exporter::start(registry::loader().load(&path).unwrap(), Some(path.clone()));
    let series = |e: &Exporter| -> usize {
        e.store
            .statuses(SystemTime::now())
            .iter()
            .map(|(_, s)| s.series())
            .sum()
    };
    assert!(
        common::eventually(20, || series(&exporter) > 0).await,
        "first poll published data"
    );
    let before = series(&exporter);

    for refused in ["", "# truncated by an in-place rewrite\n[poll]\n"] {
        std::fs::write(&path, refused).unwrap();
        let e = exporter.reload().await.unwrap_err();
        let ReloadError(refused) = &e;
        assert!(
            matches!(
                refused.downcast_ref(),
                Some(ConfigError::Empty { .. } | ConfigError::NoSources { .. })
            ),
            "{e}"
        );
        let statuses = exporter.store.statuses(SystemTime::now());
        assert_eq!(statuses.len(), 1, "the running source is kept");
        assert_eq!(statuses[0].0.account, "acme");
        assert_eq!(series(&exporter), before, "its data is kept");
    }

    // A good file is taken again.
    std::fs::write(&path, &text).unwrap();
    assert!(exporter.reload().await.is_ok());
    tokio::time::sleep(Duration::from_millis(10)).await;
    exporter.poller.stop();
}

/// `POST /-/reload` answers a refused config with the typed `ReloadError`'s own text, the same
/// words `reload()` returns and logs: every problem, each naming its key.
#[tokio::test]
async fn the_http_reload_answers_with_the_reload_errors_text() {
    let (_sim, text, _dir, path) = config_file(5).await;
    let config = registry::loader().load(&path).unwrap();
    let mut server = config.server.clone();
    server.enable_lifecycle = true;
    let exporter = Exporter::start(config, Some(path.clone()));
    let handle = awareness_exporter::app::serve(exporter.clone(), "127.0.0.1:0", &server)
        .await
        .unwrap();
    let url = format!("http://{}/-/reload", handle.addr);

    std::fs::write(&path, format!("{text}bogus_key = 1\n")).unwrap();
    let typed: ReloadError = exporter.reload().await.unwrap_err();
    assert!(typed.0.downcast_ref::<ConfigError>().is_some(), "{typed}");
    let r = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(r.status(), 500);
    let answer = r.text().await.unwrap();
    assert_eq!(answer, format!("failed to reload config: {typed}\n"));
    assert!(answer.contains("bogus_key"), "{answer}");

    std::fs::write(&path, &text).unwrap();
    let r = reqwest::Client::new().post(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "config reloaded: 1 sources\n");
    handle.shutdown().await;
    exporter.poller.stop();
}

/// A refused reload is seen without reading the log: `awareness_config_last_reload_successful`
/// 0 (as Prometheus names it) and the landing page with the reason; a good one sets it back to
/// 1 with a new success time. An account added by a reload does not take readiness back: it is
/// shown as "first poll running".
#[tokio::test]
async fn reloads_are_visible_and_readiness_holds_across_them() {
    let (_sim, text, _dir, path) = config_file(5).await;
    let exporter = Exporter::start(registry::loader().load(&path).unwrap(), Some(path.clone()));
    assert!(common::eventually(20, || exporter.store.ready()).await);
    let gauge = |name: &str| common::samples(&exporter.store.render(SystemTime::now()))[name];
    let successful = "awareness_config_last_reload_successful{}";
    let loaded_at = "awareness_config_last_reload_success_timestamp_seconds{}";
    assert_eq!(gauge(successful), 1.0);
    let first_load = gauge(loaded_at);
    let page = || awareness_exporter::testing::landing::render(&exporter.store, SystemTime::now());
    assert!(!page().contains("Config reload refused"));

    std::fs::write(&path, format!("{text}bogus_key = 1\n")).unwrap();
    exporter.reload().await.unwrap_err();
    assert_eq!(gauge(successful), 0.0);
    assert_eq!(
        gauge(loaded_at),
        first_load,
        "the config in force is the first one"
    );
    let html = page();
    assert!(html.contains("Config reload refused"), "{html}");
    assert!(
        html.contains("bogus_key"),
        "the reason names the key: {html}"
    );

    // A good reload adding an account whose vendor never answers.
    let blackhole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let added = format!(
        "\n[[cyberpilot]]\naccount = \"late\"\naccount_id = \"x\"\ntoken = \"t\"\nbase_url = \"http://{}\"\n",
        blackhole.local_addr().unwrap()
    );
    tokio::time::sleep(Duration::from_millis(10)).await; // a later success time
    std::fs::write(&path, format!("{text}{added}")).unwrap();
    exporter.reload().await.unwrap();
    assert_eq!(gauge(successful), 1.0);
    assert!(gauge(loaded_at) > first_load);
    assert!(exporter.store.ready(), "ready stays ready across a reload");
    let html = page();
    assert!(!html.contains("Config reload refused"), "{html}");
    assert!(html.contains("first poll running"), "{html}");
    exporter.poller.stop();
}
