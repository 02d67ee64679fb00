//! The README walk-through of a new user, checked: prerequisites stated, exactly the two
//! set-up commands, the test scripts honouring CARGO_TARGET_DIR and installing what they need,
//! and no script pointing at files outside the repository.

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(path)).unwrap()
}

#[test]
fn the_readme_states_prerequisites_and_keeps_two_set_up_commands() {
    let readme = read("README.md");
    let setup = readme
        .split("## Set-up: the two commands")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a set-up section");
    for needed in [
        "rustup",
        "rustfmt",
        "clippy",
        "Cargo.lock",
        "python3",
        "install-test-deps.sh",
        "root",
        "sudo sh -c 'apt-get update && apt-get install",
        "CARGO_TARGET_DIR",
        "2-core",
        "GB",
        "min",
    ] {
        assert!(setup.contains(needed), "set-up section lacks {needed:?}");
    }
    assert!(!setup.contains("PLACEHOLDER"), "figures filled in");
    let block = setup
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a command block");
    let commands: Vec<&str> = block
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(
        commands,
        ["cargo run --release -- --demo", "./scripts/test.sh"],
        "exactly the two set-up commands"
    );
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

#[test]
fn scripts_point_at_nothing_outside_the_repository() {
    for script in [
        "scripts/metrics-used.py",
        "scripts/check-rules.sh",
        "scripts/test.sh",
    ] {
        let text = read(script);
        assert!(
            !text.contains("\"..\", \"shared\"") && !text.contains("../shared"),
            "{script} points outside the repository"
        );
    }
}
