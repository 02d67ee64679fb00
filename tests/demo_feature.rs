//! The `demo` feature. Without it (`cargo test --no-default-features --test demo_feature`, which
//! scripts/test.sh runs) the binary has no simulator and refuses `--demo` with a clear message;
//! with it (the default) `--demo` starts the simulated tenants.

#[cfg(not(feature = "demo"))]
#[test]
fn demo_is_refused_with_a_clear_message_without_the_feature() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .args(["--demo", "--web.listen-address", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("built without the `demo` feature"),
        "stderr: {stderr}"
    );
    assert!(!stderr.contains("listening"), "stderr: {stderr}");
}

#[cfg(feature = "demo")]
#[tokio::test]
async fn demo_starts_the_simulated_tenants_with_the_feature() {
    let (demo, config) = awareness_exporter::demo::start().await.unwrap();
    let accounts: Vec<String> = config.sources.iter().map(|s| s.key().to_string()).collect();
    let tenants = demo.tenants().tenants();
    assert!(!tenants.is_empty());
    assert_eq!(accounts.len(), tenants.len(), "{accounts:?}");
}
