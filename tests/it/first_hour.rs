//! A new user's first hour, as the scripts behave: the test scripts honour CARGO_TARGET_DIR and
//! say what to install without root. (The README's set-up prose and the scripts' paths are
//! checked by scripts/lint-assets.py.)

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap()
}

#[test]
fn test_script_honours_cargo_target_dir() {
    let binary = |dir: Option<&str>| {
        let mut cmd = Command::new("bash");
        cmd.arg(Path::new(ROOT).join("scripts/test.sh"))
            .arg("--print-binary");
        match dir {
            Some(d) => cmd.env("CARGO_TARGET_DIR", d),
            None => cmd.env_remove("CARGO_TARGET_DIR"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    assert_eq!(
        binary(Some("/elsewhere/build")),
        "/elsewhere/build/release/awareness-exporter"
    );
    assert_eq!(
        binary(None),
        format!("{ROOT}/target/release/awareness-exporter")
    );
    assert_eq!(
        binary(Some("out")),
        format!("{ROOT}/out/release/awareness-exporter")
    );
    assert!(!read("scripts/test.sh").contains("$PWD/target/release"));
    assert!(!read("scripts/e2e-prometheus.sh").contains("$root/target/release"));
}

#[test]
fn test_dependencies_include_python3_and_say_what_to_run_without_root() {
    // An ordinary user with none of the tools and no sudo: a PATH holding only a fake `id`.
    let dir = tempfile::tempdir().unwrap();
    let id = dir.path().join("id");
    std::fs::write(&id, "#!/bin/sh\necho 1000\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&id, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("/bin/bash")
        .arg(Path::new(ROOT).join("scripts/install-test-deps.sh"))
        .env("PATH", dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Ask an administrator to run")
            && stderr.contains("apt-get install -y --no-install-recommends prometheus python3"),
        "{stderr}"
    );
}
