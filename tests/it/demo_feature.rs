//! The `demo` feature (on by default): `--demo` starts the simulated tenants. scripts/test.sh
//! checks the other half: a binary built without it refuses `--demo` with a clear message.

#[cfg(feature = "demo")]
#[tokio::test]
async fn demo_starts_the_simulated_tenants_with_the_feature() {
    let (demo, config) = awareness_exporter::demo::start().await.unwrap();
    let accounts: Vec<String> = config.sources.iter().map(|s| s.key().to_string()).collect();
    let tenants = demo.tenants();
    assert!(!tenants.is_empty());
    assert_eq!(accounts.len(), tenants.len(), "{accounts:?}");
}
