//! Golden `/metrics`: the whole body for a fixed simulated population (one CyberPilot account,
//! one Mimecast account of each auth mode, per-user series on), snapshotted with insta. Values
//! that depend on the clock (timestamps, durations) are masked.

use crate::common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use awareness_exporter::app::Exporter;
use awareness_sim::cyberpilot::{self, CyberPilotOptions};
use awareness_sim::mimecast::{self, MimecastOptions, SimAuth};
use awareness_sim::Population;
use common::*;

fn mask(body: &str) -> String {
    body.lines()
        .map(|l| {
            if l.starts_with("awareness_last_success_timestamp_seconds{")
                || l.starts_with("awareness_section_last_success_timestamp_seconds{")
                || l.starts_with("awareness_poll_duration_seconds{")
                || l.starts_with("awareness_config_last_reload_success_timestamp_seconds{")
            {
                match l.rsplit_once(' ') {
                    Some((series, _)) => format!("{series} <masked>"),
                    None => l.to_string(),
                }
            } else if l.starts_with("awareness_build_info{") {
                "awareness_build_info{version=\"<masked>\"} 1.0".to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn whole_metrics_body_for_a_fixed_population() {
    let cp = cyberpilot::start(
        Arc::new(Population::generate(101, 40)),
        CyberPilotOptions::default(),
    )
    .await
    .unwrap();
    let oauth = SimAuth::demo_oauth2();
    let hmac = SimAuth::demo_hmac();
    let mc1 = mimecast::start(
        Arc::new(Population::generate(202, 25)),
        MimecastOptions {
            auth: oauth.clone(),
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    let mc2 = mimecast::start(
        Arc::new(Population::generate(303, 15)),
        MimecastOptions {
            auth: hmac.clone(),
            ..MimecastOptions::default()
        },
    )
    .await
    .unwrap();
    let o = CyberPilotOptions::default();
    let text = format!(
        "[metrics]\nper_user = true\n{}{}page_size = 10\n{}page_size = 10\n{}page_size = 10\n",
        o.account_block(&cp, "cp"),
        o.token_key(),
        mimecast::account_block(&mc1, "mc-oauth2", &oauth),
        mimecast::account_block(&mc2, "mc-hmac", &hmac),
    );
    let config = parse(&text);
    let exporter = Exporter::start(config, None);
    assert!(eventually(30, || exporter.store.ready()).await);
    let statuses = exporter.store.statuses(SystemTime::now());
    for (key, s) in &statuses {
        assert!(s.up(), "{key}: {:?}", s.last_error);
    }
    let now = SystemTime::now();
    // Every vendor and section declares each shared family alike (type and help).
    let health = exporter.store.render_health();
    let sections = exporter.store.data_sections(now);
    if let Err(clash) = awareness_exporter::snapshot::try_merge(
        std::iter::once(&health).chain(sections.iter().map(|s| s.as_ref())),
    ) {
        panic!("{clash}");
    }
    let body = exporter.store.render(now);
    exporter.poller.stop();
    insta::assert_snapshot!("metrics_body", mask(&body));
    let _ = Duration::ZERO;
}
