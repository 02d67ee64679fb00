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
        "deploy/kubernetes/statefulset-sharded.yaml",
        "deploy/systemd/awareness-exporter.service",
    ] {
        assert!(!read(path).contains("--web.enable-lifecycle"), "{path}");
    }
    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("deploy/compose/docker-compose.yml")).unwrap();
    let exporter = &compose["services"]["awareness-exporter"]["command"];
    assert!(!format!("{exporter:?}").contains("lifecycle"));
}

/// The sharded StatefulSet: its pods take their shard from their own name, and the number of
/// shards is the number of replicas (a mismatch would leave accounts unpolled or refuse to start).
#[test]
fn the_sharded_statefulset_gives_each_pod_its_shard() {
    let text = read("deploy/kubernetes/statefulset-sharded.yaml");
    let docs: Vec<serde_yaml_ng::Value> = text
        .split("\n---\n")
        .map(|d| serde_yaml_ng::from_str(d).unwrap())
        .collect();
    let set = docs
        .iter()
        .find(|d| d["kind"] == "StatefulSet")
        .expect("a StatefulSet");
    let service = docs
        .iter()
        .find(|d| d["kind"] == "Service")
        .expect("its Service");
    assert_eq!(set["spec"]["serviceName"], service["metadata"]["name"]);
    assert_eq!(
        service["spec"]["clusterIP"], "None",
        "a headless governing Service"
    );
    let pod = &set["spec"]["template"];
    assert_eq!(
        pod["metadata"]["labels"],
        set["spec"]["selector"]["matchLabels"]
    );
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--pod=$(POD_NAME)"), "{args:?}");
    let env = container["env"].as_sequence().unwrap();
    assert!(env
        .iter()
        .any(|e| e["name"] == "POD_NAME"
            && e["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"));
    let replicas = set["spec"]["replicas"].as_u64().unwrap();
    assert!(replicas > 1);
    assert!(
        args.contains(&format!("--total-shards={replicas}").as_str()),
        "--total-shards must equal spec.replicas ({replicas}): {args:?}"
    );
    // The Service of service.yaml (which the ServiceMonitor scrapes) selects every shard.
    let scraped: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("deploy/kubernetes/service.yaml")).unwrap();
    for (k, v) in scraped["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(&pod["metadata"]["labels"][k.as_str().unwrap()], v);
    }
}

/// The malloc settings measured in docs/performance.md ship with the image (and so the
/// Kubernetes and compose deployments) and the systemd unit.
#[test]
fn the_image_and_the_unit_limit_malloc_arenas() {
    for setting in ["MALLOC_ARENA_MAX=2", "MALLOC_MMAP_THRESHOLD_=131072"] {
        assert!(read("deploy/Dockerfile")
            .lines()
            .any(|l| l.trim() == format!("ENV {setting}")));
        assert!(read("deploy/systemd/awareness-exporter.service")
            .lines()
            .any(|l| l.trim() == format!("Environment={setting}")));
    }
}

/// Every shipped deployment keeps the restart state (docs/deployment.md, "Restart state"): the
/// state dir is set and is a writable volume (systemd's StateDirectory, a named compose volume,
/// a Kubernetes volume mounted where the variable points).
#[test]
fn every_deployment_keeps_the_restart_state() {
    const DIR: &str = "/var/lib/awareness-exporter";
    let unit = read("deploy/systemd/awareness-exporter.service");
    assert!(unit
        .lines()
        .any(|l| l == "StateDirectory=awareness-exporter"));
    assert!(unit.contains(&format!("Environment=AWARENESS_SERVER__STATE_DIR={DIR}\n")));

    let compose: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&read("deploy/compose/docker-compose.yml")).unwrap();
    let exporter = &compose["services"]["awareness-exporter"];
    assert_eq!(exporter["environment"]["AWARENESS_SERVER__STATE_DIR"], DIR);
    let mount = format!("exporter-state:{DIR}");
    assert!(exporter["volumes"]
        .as_sequence()
        .unwrap()
        .iter()
        .any(|v| v == &mount[..]));
    assert!(compose["volumes"]
        .as_mapping()
        .unwrap()
        .contains_key("exporter-state"));
    assert!(read("deploy/Dockerfile").contains(&format!("--chown=65532:65532 /out/state {DIR}")));

    for file in ["deployment.yaml", "statefulset-sharded.yaml"] {
        let text = read(&format!("deploy/kubernetes/{file}"));
        let docs: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        let workload = docs
            .iter()
            .find(|d| d["spec"]["template"].is_mapping())
            .unwrap();
        let container = &workload["spec"]["template"]["spec"]["containers"][0];
        let env = container["env"].as_sequence().unwrap();
        assert!(
            env.iter()
                .any(|e| e["name"] == "AWARENESS_SERVER__STATE_DIR" && e["value"] == DIR),
            "{file}"
        );
        let mounts = container["volumeMounts"].as_sequence().unwrap();
        let state = mounts.iter().find(|m| m["mountPath"] == DIR).expect(file);
        let name = &state["name"];
        let volumes = workload["spec"]["template"]["spec"]["volumes"]
            .as_sequence()
            .unwrap();
        let claims = workload["spec"]["volumeClaimTemplates"].as_sequence();
        let declared = volumes.iter().any(|v| &v["name"] == name)
            || claims.is_some_and(|c| c.iter().any(|v| &v["metadata"]["name"] == name));
        assert!(declared, "{file}: no volume {name:?}");
    }
}
