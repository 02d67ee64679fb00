//! What the shipped deployment files promise (docs/security.md): the compose demo stack is
//! reachable from this host only unless the user opts in, the systemd unit forbids core dumps,
//! and nothing ships `/-/reload` open over HTTP by default.

use std::path::Path;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn compose_publishes_every_port_on_loopback_unless_opted_in() {
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("deploy/compose/docker-compose.yml")).unwrap();
    let services = compose["services"].as_mapping().unwrap();
    let mut published = 0;
    for (name, service) in services {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("${AWARENESS_PUBLISH_ADDRESS:-127.0.0.1}:"),
                "{name:?} publishes {port} on every interface"
            );
            published += 1;
        }
    }
    assert_eq!(published, 4, "exporter, Prometheus, Alertmanager, Grafana");
}

#[test]
fn systemd_unit_forbids_core_dumps() {
    let unit = read("deploy/systemd/awareness-exporter.service");
    assert!(unit.lines().any(|l| l.trim() == "LimitCORE=0"));
}

#[test]
fn no_shipped_deployment_opens_the_lifecycle_api() {
    for path in [
        "deploy/kubernetes/deployment.yaml",
        "deploy/systemd/awareness-exporter.service",
    ] {
        assert!(!read(path).contains("--web.enable-lifecycle"), "{path}");
    }
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("deploy/compose/docker-compose.yml")).unwrap();
    let exporter = &compose["services"]["awareness-exporter"]["command"];
    assert!(!format!("{exporter:?}").contains("lifecycle"));
}
