//! The binary's first hour: `--check-config` checks everything start-up checks and reports all
//! problems at once; logging refuses unknown levels, prints fatal errors once, and writes no
//! colour codes into a pipe.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

const SENTINEL: &str = "SENTINEL-SECRET-7f3a9c";

/// Runs the binary on `config` without the variables the example's `*_env` secrets name.
fn exporter(args: &[&str], config: &Path) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_awareness-exporter"));
    cmd.args(args).arg("--config.file").arg(config);
    for secret in common::secret_refs(&common::example_text()) {
        if !secret.is_file() {
            cmd.env_remove(&secret.value);
        }
    }
    cmd.output().unwrap()
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn good_config(dir: &Path, extra_server: &str) -> std::path::PathBuf {
    let path = dir.join("c.toml");
    std::fs::write(
        &path,
        format!("[server]\n{extra_server}\n[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\n"),
    )
    .unwrap();
    path
}

#[test]
fn the_shipped_example_gives_all_its_errors_in_one_run() {
    let example = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"));
    let out = exporter(&["--check-config"], example);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    // Every secret the example points at is missing on a fresh machine: all of them at once.
    let secrets = common::secret_refs(&common::example_text());
    assert!(
        secrets
            .iter()
            .any(|s| s.key == "mimecast[1].secret_key_file"),
        "the example is read"
    );
    for secret in &secrets {
        let key = &secret.key;
        assert!(
            stdout.contains(&format!("`{key}`")),
            "{key} not reported:\n{stdout}"
        );
    }
    assert!(
        stdout.contains(&format!("{} problems", secrets.len())),
        "{stdout}"
    );
    // The example's placeholders are pointed out.
    assert!(
        stderr.contains("`mimecast[0].client_id`") && stderr.contains("placeholder"),
        "{stderr}"
    );
    assert!(stderr.contains("`mimecast[1].app_id`"), "{stderr}");
}

#[test]
fn check_config_checks_the_web_config_and_the_listen_address() {
    let dir = tempfile::tempdir().unwrap();
    // A web config file that does not exist.
    let path = good_config(dir.path(), "web_config_file = \"web.yml\"");
    let out = exporter(&["--check-config"], &path);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("web.yml") && stdout.contains("server.web_config_file"),
        "{stdout}"
    );

    // A malformed one, and certificate files that do not exist.
    std::fs::write(dir.path().join("web.yml"), "tls_server_config: [\n").unwrap();
    let (stdout, _) = text(&exporter(&["--check-config"], &path));
    assert!(stdout.contains("is invalid"), "{stdout}");
    std::fs::write(
        dir.path().join("web.yml"),
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n",
    )
    .unwrap();
    let out = exporter(&["--check-config"], &path);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("cert_file"), "{stdout}");

    // An invalid --web.listen-address, reported together with the web config problem.
    let out = exporter(
        &["--check-config", "--web.listen-address", "localhost:http"],
        &path,
    );
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("--web.listen-address") && stdout.contains("cert_file"),
        "{stdout}"
    );

    let path = good_config(dir.path(), "");
    let out = exporter(
        &["--check-config", "--web.listen-address", "127.0.0.1:0"],
        &path,
    );
    assert!(out.status.success(), "{:?}", text(&out));
}

#[test]
fn check_config_refuses_an_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "").unwrap();
    let out = exporter(&["--check-config"], &path);
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("empty"), "{stdout}");
}

#[test]
fn unknown_log_levels_are_refused_with_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = good_config(dir.path(), "");
    for level in ["warning", "inf", "awareness_exporter=verbose"] {
        let out = exporter(&["--check-config", "--log.level", level], &path);
        let (stdout, stderr) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{level}: {stdout}{stderr}");
        assert!(
            stderr.contains("error, warn, info, debug, trace"),
            "{level}: {stderr}"
        );
    }
    let (_, stderr) = text(&exporter(
        &["--check-config", "--log.level", "warning"],
        &path,
    ));
    assert!(stderr.contains("did you mean `warn`"), "{stderr}");
    for level in ["warn", "DEBUG", "info,awareness_exporter=debug"] {
        let out = exporter(&["--check-config", "--log.level", level], &path);
        assert!(out.status.success(), "{level}: {:?}", text(&out));
    }
}

#[test]
fn fatal_errors_are_printed_once_without_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = exporter(&[], &dir.path().join("missing.toml"));
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert_eq!(
        stderr.matches("does not exist").count(),
        1,
        "printed once: {stderr}"
    );
    assert!(
        stderr.contains("config.example.toml") && stderr.contains("--demo"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr:?}"
    );
}

#[test]
fn a_config_without_accounts_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, "[poll]\ninterval = \"10m\"\n").unwrap();
    let out = exporter(&["--web.listen-address", "127.0.0.1:0"], &path);
    let (_, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("names no account"), "{stderr}");
}

#[test]
fn check_config_never_echoes_a_misplaced_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        format!(
            "[metrics]\nmax_users = \"{SENTINEL}\"\n[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_env = \"{SENTINEL}\"\n\
             [[mimecast]]\naccount = \"m\"\nclient_id = \"c\"\nclient_secret_file = \"{SENTINEL}\"\n"
        ),
    )
    .unwrap();
    let out = exporter(&["--check-config"], &path);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("3 problems"), "{stdout}");
    assert!(
        !stdout.contains(SENTINEL) && !stderr.contains(SENTINEL),
        "{stdout}{stderr}"
    );
}

/// The scripts (metrics-doc.py, e2e_prometheus.py) learn the platforms from the binary, and
/// `--help` names every registered product.
#[test]
fn the_binary_lists_every_registered_platform() {
    use awareness_exporter::registry;
    let out = Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .arg("--list-platforms")
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let registered: Vec<String> = registry::platforms().map(str::to_string).collect();
    assert_eq!(listed, registered);

    let help = Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(!help.contains("list-platforms"), "a hidden flag: {help}");
    for v in registry::VENDORS {
        assert!(help.contains(v.title()), "{}: {help}", v.title());
    }
}

/// `--check-config` warns about a `*_file` secret that others may read and still says the
/// config is valid (exit 0); the warning names the key and the file, never the content.
#[cfg(unix)]
#[test]
fn check_config_warns_about_a_secret_file_others_can_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cp.token");
    std::fs::write(&secret, SENTINEL).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_file = \"cp.token\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = exporter(&["--check-config"], &path);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("is valid"), "{stdout}");
    assert!(
        stderr.contains("warning: key `cyberpilot[0].token_file` (line 4)")
            && stderr.contains(&secret.display().to_string())
            && stderr.contains("mode 0644"),
        "{stderr}"
    );
    assert!(!stdout.contains(SENTINEL) && !stderr.contains(SENTINEL));

    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = exporter(&["--check-config"], &path);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(!stderr.contains("token_file"), "{stderr}");
}

/// `--web.listen-address :PORT` listens on every interface, as in Prometheus and its exporters
/// (issue 23): the logged address is 0.0.0.0's, and loopback reaches it.
#[tokio::test]
async fn a_listen_address_of_only_a_port_is_every_interface() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .unwrap();
    let (mut child, addr) = common::start_binary(&path, &["--web.listen-address", ":0"]).await;
    assert!(addr.ip().is_unspecified(), "{addr}");
    let r = reqwest::get(format!("http://127.0.0.1:{}/-/healthy", addr.port()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    child.kill().await.unwrap();
}
