//! Config loading: every error names its key (and line), secrets never show, the example file
//! is valid.

use crate::common;

use std::time::Duration;

use awareness_exporter::config;
use awareness_exporter::registry;
use awareness_exporter::testing::sources::cyberpilot::{CyberPilotAuth, CyberPilotConfig};
use awareness_exporter::testing::sources::mimecast::{
    MimecastAuth, MimecastConfig, MimecastEndpoint,
};

const SENTINEL: &str = "SENTINEL-SECRET-7f3a9c";

fn err(text: &str) -> String {
    registry::loader()
        .parse(text, "test.toml")
        .unwrap_err()
        .to_string()
}

#[test]
fn minimal_config_gets_contract_defaults() {
    let c = registry::loader()
        .parse(
            "[[cyberpilot]]\naccount = \"acme\"\naccount_id = \"abc\"\ntoken = \"t\"\n",
            "t.toml",
        )
        .unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:10019");
    assert_eq!(c.server.state_dir, None, "off by default");
    assert_eq!(c.poll.interval, Duration::from_secs(1800));
    assert_eq!(c.poll.timeout, Duration::from_secs(60));
    assert_eq!(c.poll.max_age, Duration::from_secs(6 * 3600));
    assert!(!c.metrics.per_user);
    assert_eq!(c.metrics.max_users, 20000);
    let Some(cp) = c.sources[0].get::<CyberPilotConfig>() else {
        panic!("not cyberpilot")
    };
    assert_eq!(cp.base_url, "https://api.app.cyberpilot.io");
    assert_eq!(cp.page_size, 1000);
    assert!(matches!(&cp.auth, CyberPilotAuth::Token(t) if t.expose() == "t"));
}

#[test]
fn unknown_keys_are_named_with_their_line() {
    let e = err("[poll]\ninterval = \"5m\"\nintervall = \"5m\"\n");
    assert!(e.contains("intervall"), "{e}");
    assert!(e.contains("line 3"), "{e}");
    let e = err("[[mimecast]]\naccount = \"a\"\nclient_id = \"x\"\nclient_secret = \"y\"\nsecretkey = \"z\"\n");
    assert!(e.contains("secretkey") && e.contains("line 5"), "{e}");
}

#[test]
fn bad_values_name_the_key() {
    for (text, key) in [
        ("[poll]\ninterval = \"soon\"\n", "interval"),
        ("[poll]\ninterval = \"100ms\"\n", "poll.interval"),
        ("[poll]\ninterval = \"30d\"\n", "poll.interval"),
        ("[poll]\ntimeout = \"2h\"\n", "poll.timeout"),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[metrics]\nper_user = \"yes\"\n", "per_user"),
        ("[[cyberpilot]]\naccount = \"a\"\ntoken = \"t\"\n", "cyberpilot[0].account_id"),
        ("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\n", "cyberpilot[0].token"),
        ("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\nbase_url = \"ftp://x\"\n", "cyberpilot[0].base_url"),
        ("[[mimecast]]\naccount = \"a\"\nauth = \"basic\"\n", "mimecast[0].auth"),
        ("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\nendpoints = [\"everything\"]\n", "mimecast[0].endpoints"),
        ("[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\napp_id = \"i\"\napp_key = \"k\"\naccess_key = \"a\"\nsecret_key = \"***\"\n", "mimecast[0].secret_key"),
        ("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\n[[cyberpilot]]\naccount = \"a\"\naccount_id = \"y\"\ntoken = \"t\"\n", "cyberpilot[1].account` (line 6): is configured twice"),
        ("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\ntoken_env = \"X\"\n", "cyberpilot[0].token"),
    ] {
        let e = err(text);
        assert!(e.contains(key), "error for {text:?} should name {key}: {e}");
    }
}

#[test]
fn secrets_never_appear_in_errors_or_debug() {
    // A syntax error on the line holding the secret.
    let e = err(&format!(
        "[[cyberpilot]]\naccount = \"a\"\ntoken = \"{SENTINEL}\" junk\n"
    ));
    assert!(!e.contains(SENTINEL), "{e}");
    // A type error on a secret.
    let e = err(&format!(
        "[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret = [\"{SENTINEL}\"]\n"
    ));
    assert!(!e.contains(SENTINEL), "{e}");
    // A valid config's Debug output.
    let c = registry::loader()
        .parse(
            &format!(
            "[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret = \"{SENTINEL}\"\n"
        ),
            "t.toml",
        )
        .unwrap();
    assert!(!format!("{c:?}").contains(SENTINEL));
}

#[test]
fn secrets_from_files_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, format!("  {SENTINEL}\n")).unwrap();
    let text = format!(
        "[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\nregion = \"eu\"\napp_id = \"i\"\napp_key_env = \"AWARENESS_TEST_APP_KEY\"\naccess_key_file = \"{p}\"\nsecret_key = \"c2VjcmV0\"\n",
        p = path.display()
    );
    let loader = registry::loader().with_env([("AWARENESS_TEST_APP_KEY", "appkey")]);
    let c = loader.parse(&text, "t.toml").unwrap();
    let Some(m) = c.sources[0].get::<MimecastConfig>() else {
        panic!()
    };
    let MimecastAuth::Hmac {
        app_key,
        access_key,
        ..
    } = &m.auth
    else {
        panic!()
    };
    assert_eq!(app_key.expose(), "appkey");
    assert_eq!(access_key.expose(), SENTINEL);
    assert_eq!(m.endpoints, MimecastEndpoint::ALL.to_vec());

    // Neither a path nor a variable's name is a secret: both are named (issue 23).
    let e = err("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_env = \"AWARENESS_TEST_UNSET_VAR\"\n");
    assert!(
        e.contains("`mimecast[0].client_secret_env` (line 4): the environment variable AWARENESS_TEST_UNSET_VAR is not set"),
        "{e}"
    );
    let e = err("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_file = \"/nonexistent/x\"\n");
    assert!(
        e.contains("`mimecast[0].client_secret_file` (line 4): cannot read the file it names /nonexistent/x: no such file"),
        "{e}"
    );
}

#[test]
fn example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let text = common::example_text();
    // Every secret it points at, base64 as Mimecast's secret key must be.
    let mut env = Vec::new();
    for secret in common::secret_refs(&text) {
        if secret.is_file() {
            let name = secret.value.trim_start_matches("/etc/awareness-exporter/");
            std::fs::write(dir.path().join(name), "c2VjcmV0a2V5").unwrap();
        } else {
            env.push((secret.value.clone(), "s"));
        }
    }
    let text = text.replace(
        "/etc/awareness-exporter/",
        &format!("{}/", dir.path().display()),
    );
    let c = registry::loader()
        .with_env(env)
        .parse(&text, "config.example.toml")
        .unwrap();
    assert_eq!(c.sources.len(), common::account_blocks(&text));
}

#[test]
fn kubernetes_configmap_config_is_valid() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/configmap.yaml"
    ))
    .unwrap();
    // The TOML is the indented block under `awareness-exporter.toml: |`.
    let mut lines = yaml
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("awareness-exporter.toml: |"));
    lines.next();
    let block: Vec<&str> = lines
        .take_while(|l| l.is_empty() || l.starts_with("    "))
        .collect();
    let text = block
        .iter()
        .map(|l| l.strip_prefix("    ").unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("[[cyberpilot]]"), "found the embedded config");
    let dir = tempfile::tempdir().unwrap();
    let text = text.replace(
        "/etc/awareness-exporter/secrets/",
        &format!("{}/", dir.path().display()),
    );
    for line in text.lines() {
        if let Some((_, path)) = line.split_once("_file = ") {
            std::fs::write(path.trim().trim_matches('"'), "c2VjcmV0").unwrap();
        }
    }
    let c = registry::loader()
        .parse(&text, "configmap.yaml")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.sources.is_empty());
}

/// Every message a set of broken configs produces, one string.
fn all_errors(texts: &[&str]) -> String {
    texts.iter().map(|t| err(t)).collect::<Vec<_>>().join("\n")
}

#[test]
fn every_error_is_reported_in_one_pass() {
    let text = "[poll]\nintervall = \"5m\"\ntimeout = 5\n[metrics]\nmax_users = -1\n\
                [server]\nlisten = \"nowhere\"\n\
                [[cyberpilot]]\naccount = \"a\"\ntoken = \"t\"\n\
                [[mimecast]]\naccount = \"m\"\nauth = \"hmac\"\napp_id = \"i\"\n";
    let report = registry::loader().check_text(text, "t.toml", std::path::Path::new("."));
    let problems: Vec<String> = report.errors.iter().map(|p| p.to_string()).collect();
    for key in [
        "poll.intervall",
        "poll.timeout",
        "metrics.max_users",
        "server.listen",
        "cyberpilot[0].account_id",
        "mimecast[0].app_key",
        "mimecast[0].access_key",
        "mimecast[0].secret_key",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(&format!("`{key}`"))),
            "{key} missing from {problems:#?}"
        );
    }
    // Each names its line.
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`poll.intervall` (line 2)")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("`poll.timeout` (line 3)")),
        "{problems:#?}"
    );
    // In the order of the file.
    let lines: Vec<usize> = problems
        .iter()
        .filter_map(|p| p.split("(line ").nth(1)?.split(')').next()?.parse().ok())
        .collect();
    assert!(
        lines.len() >= 8 && lines.windows(2).all(|w| w[0] <= w[1]),
        "{problems:#?}"
    );
}

#[test]
fn errors_speak_the_users_language() {
    let dir = tempfile::tempdir().unwrap();
    let latin1 = dir.path().join("latin1");
    std::fs::write(&latin1, [0xe9, 0xff]).unwrap();
    let e = all_errors(&[
        "[metrics]\nmax_users = \"many\"\n",
        "[poll]\nmax_attempts = 2.5\n",
        "[poll]\ninterval = 300\n",
        "[metrics]\nper_user = \"yes\"\n",
        "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\nbase_url = \"api.app.cyberpilot.io\"\n",
        "[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_file = \"/nonexistent/secret\"\n",
        &format!(
            "[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_file = \"{}\"\n",
            latin1.display()
        ),
        "[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\nendpoints = \"campaigns\"\n",
    ]);
    for rust in [
        "usize",
        "u32",
        "expected",
        "entity not found",
        "invalid data",
        "relative URL without a base",
        "``",
        "os error",
    ] {
        assert!(!e.contains(rust), "{rust:?} in:\n{e}");
    }
    assert!(e.contains("whole number"), "{e}");
    assert!(e.contains("duration in quotes"), "{e}");
    assert!(e.contains("true or false"), "{e}");
    assert!(e.contains("https://"), "{e}");
    assert!(e.contains("no such file"), "{e}");
    assert!(e.contains("not UTF-8"), "{e}");
}

#[test]
fn a_secret_in_the_wrong_field_is_never_echoed() {
    let dir = tempfile::tempdir().unwrap();
    for text in [
        // The token pasted where an environment variable's name belongs.
        format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_env = \"{SENTINEL}\"\n"),
        format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_env = \"eyJ{SENTINEL}.x-y\"\n"),
        // ... or where a path belongs.
        format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_file = \"{SENTINEL}\"\n"),
        format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\n[cyberpilot.login]\ntoken_url = \"https://x\"\nclient_id = \"c\"\nusername = \"u\"\npassword_env = \"{SENTINEL}\"\n"),
        // A valid-looking variable name that is not set is not echoed either.
        "[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_env = \"SENTINEL_SECRET_7f3a9c\"\n".to_string(),
        // Type errors never quote the value.
        format!("[metrics]\nmax_users = \"{SENTINEL}\"\n"),
        format!("[poll]\ninterval = \"{SENTINEL}\"\n"),
        format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\npage_size = \"{SENTINEL}\"\n"),
        format!("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\nendpoints = [\"{SENTINEL}\", 1]\n"),
        format!("[[mimecast]]\naccount = \"a\"\nauth = \"{SENTINEL}\"\n"),
        format!("[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\napp_id = \"i\"\napp_key = \"k\"\naccess_key = \"a\"\nsecret_key = \"{SENTINEL}!\"\n"),
        format!("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret = \"s\"\nbase_url = \"{SENTINEL}\"\n"),
        // Figment's old path quoted environment values; a bad override must not either.
    ] {
        let e = registry::loader().parse(&text, "t.toml").unwrap_err().to_string();
        assert!(!e.contains("SENTINEL"), "echoed:\n{e}\nfor:\n{text}");
        let report = registry::loader().check_text(&text, "t.toml", dir.path());
        for w in &report.warnings {
            assert!(!w.contains("SENTINEL"), "warning echoed: {w}");
        }
    }
    let e = err(&format!(
        "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_env = \"{SENTINEL}\"\n"
    ));
    assert!(
        e.contains("cyberpilot[0].token_env") && e.contains("not an environment variable name"),
        "{e}"
    );
}

#[test]
fn errors_name_the_key_the_user_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("secret_key");
    std::fs::write(&key, "not base64!").unwrap();
    let e = err(&format!(
        "[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\napp_id = \"i\"\napp_key = \"k\"\naccess_key = \"a\"\nsecret_key_file = \"{}\"\n",
        key.display()
    ));
    assert!(e.contains("`mimecast[0].secret_key_file` (line 7)"), "{e}");
    let e = registry::loader()
        .with_env([("AWARENESS_TEST_EMPTY_SECRET", " ")])
        .parse("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_env = \"AWARENESS_TEST_EMPTY_SECRET\"\n", "t.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("`mimecast[0].client_secret_env`") && e.contains("empty"),
        "{e}"
    );
}

#[test]
fn relative_secret_paths_resolve_against_the_config_files_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/token"), "from-the-folder\n").unwrap();
    let path = dir.path().join("exporter.toml");
    std::fs::write(
        &path,
        "[server]\nweb_config_file = \"web.yml\"\nstate_dir = \"state\"\n\
         [[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_file = \"secrets/token\"\n",
    )
    .unwrap();
    // The test's working directory is the crate root, not the config's folder.
    let c = registry::loader().load(&path).unwrap();
    let Some(cp) = c.sources[0].get::<CyberPilotConfig>() else {
        panic!()
    };
    assert!(matches!(&cp.auth, CyberPilotAuth::Token(t) if t.expose() == "from-the-folder"));
    assert_eq!(c.server.web_config_file, Some(dir.path().join("web.yml")));
    assert_eq!(c.server.state_dir, Some(dir.path().join("state")));
}

#[test]
fn a_missing_config_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let e = registry::loader()
        .load(&dir.path().join("awareness-exporter.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    assert!(
        e.contains("config.example.toml") && e.contains("--demo"),
        "{e}"
    );
    assert!(!e.contains("invalid") && !e.contains("entity"), "{e}");
}

#[test]
fn empty_files_and_configs_without_accounts_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    for text in [
        "",
        "\n  \n",
        "# only comments\n[poll]\ninterval = \"10m\"\n",
    ] {
        std::fs::write(&path, text).unwrap();
        let e = registry::loader().load(&path).unwrap_err().to_string();
        assert!(e.contains("empty") || e.contains("names no account"), "{e}");
        assert!(e.contains("--demo"), "{e}");
    }
    // Text (the demo's, the tests') may still have no accounts.
    assert!(registry::loader().parse("", "t.toml").is_ok());
}

#[cfg(target_os = "linux")]
#[test]
fn a_file_that_changes_while_it_is_read_is_refused() {
    // /proc files announce a size of 0 and then deliver content: exactly what a file being
    // rewritten in place looks like to a reader.
    let e = registry::loader()
        .load(std::path::Path::new("/proc/self/status"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("changed while it was read") && e.contains("rename"),
        "{e}"
    );
}

#[test]
fn suspicious_values_are_warned_about() {
    let text = "[poll]\ninterval = \"2h\"\nmax_age = \"1h\"\n\
                [[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\nbase_url = \"http://cyberpilot.example.com\"\n\
                [[cyberpilot]]\naccount = \"b\"\naccount_id = \"x\"\ntoken = \"t\"\nbase_url = \"http://127.0.0.1:8080\"\n\
                [[mimecast]]\naccount = \"m\"\nclient_id = \"...\"\nclient_secret = \"s\"\n";
    let report = registry::loader().check_text(text, "t.toml", std::path::Path::new("."));
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let w = report.warnings.join("\n");
    assert!(
        w.contains("poll.max_age") && w.contains("poll.interval"),
        "{w}"
    );
    assert!(
        w.contains("`cyberpilot[0].base_url`") && w.contains("http://"),
        "{w}"
    );
    assert!(
        !w.contains("cyberpilot[1].base_url"),
        "loopback is fine: {w}"
    );
    assert!(
        w.contains("`mimecast[0].client_id` (line 16)") && w.contains("placeholder"),
        "{w}"
    );
}

#[test]
fn secrets_are_held_in_zeroizing_types() {
    // `Secret` wraps secrecy's SecretString (zeroized on drop); the API stays new/expose.
    fn is_zeroize_on_drop<T: secrecy::zeroize::ZeroizeOnDrop>() {}
    is_zeroize_on_drop::<secrecy::SecretString>();
    let s = config::Secret::new("SENTINEL");
    assert_eq!(s.expose(), "SENTINEL");
    let shown = format!("{s:?}");
    assert!(
        shown.contains("REDACTED") && !shown.contains("SENTINEL"),
        "{shown}"
    );
    assert_eq!(
        std::mem::size_of::<config::Secret>(),
        std::mem::size_of::<secrecy::SecretString>()
    );
}

#[test]
fn no_secret_key_in_any_form_echoes_its_value() {
    let block = |name: &str, line: &str| -> String {
        match name {
            "token" => format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\n{line}\n"),
            "password" => format!(
                "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\n[cyberpilot.login]\n\
                 token_url = \"https://x\"\nclient_id = \"c\"\nusername = \"u\"\n{line}\n"
            ),
            "client_secret" => {
                format!("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\n{line}\n")
            }
            _ => {
                let mut text = String::from(
                    "[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\nregion = \"eu\"\napp_id = \"i\"\n",
                );
                for other in ["app_key", "access_key", "secret_key"] {
                    if other != name {
                        text.push_str(&format!("{other} = \"c2VjcmV0\"\n"));
                    }
                }
                text.push_str(line);
                text.push('\n');
                text
            }
        }
    };
    let names: std::collections::BTreeSet<&str> = registry::VENDORS
        .iter()
        .flat_map(|v| v.secret_keys().iter().copied())
        .collect();
    for name in names {
        for line in [
            format!("{name} = [\"{SENTINEL}\"]"),
            format!("{name} = {{ v = \"{SENTINEL}\" }}"),
            format!("{name} = \"{SENTINEL}!\"\n{name}_file = \"{SENTINEL}\""),
            format!("{name}_file = \"{SENTINEL}\""),
            format!("{name}_file = [\"{SENTINEL}\"]"),
            format!("{name}_env = \"{SENTINEL}\""),
            format!("{name}_env = \"{SENTINEL}!\""),
            format!("{name}_env = 7"),
        ] {
            let text = block(name, &line);
            let e = registry::loader()
                .parse(&text, "t.toml")
                .unwrap_err()
                .to_string();
            assert!(
                !e.contains("SENTINEL"),
                "{name}: echoed in\n{e}\nfor\n{text}"
            );
            assert!(e.contains(name), "{name}: the key is named: {e}");
        }
    }
}

/// A `*_file` secret that others may read is warned about (never refused), naming the key, its
/// line and the file, never the content. Group bits are fine when the group is the exporter's
/// own (Kubernetes mounts secrets 0440 with the pod's fsGroup).
#[cfg(unix)]
#[test]
fn secret_files_open_to_others_are_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cp.token");
    std::fs::write(&secret, format!("{SENTINEL}\n")).unwrap();
    let text = format!(
        "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_file = \"{}\"\n",
        secret.display()
    );
    let warnings = |mode: u32| {
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(mode)).unwrap();
        let report = registry::loader().check_text(&text, "t.toml", dir.path());
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        assert!(report.config.is_some(), "a warning, not a failure");
        let w = report.warnings.join("\n");
        assert!(!w.contains(SENTINEL), "content echoed: {w}");
        w
    };
    let w = warnings(0o644);
    assert!(
        w.contains("`cyberpilot[0].token_file` (line 4)")
            && w.contains(&secret.display().to_string())
            && w.contains("other users (mode 0644)")
            && w.contains("chmod 600"),
        "{w}"
    );
    assert!(warnings(0o604).contains("mode 0604"));
    assert_eq!(warnings(0o600), "");
    assert_eq!(warnings(0o400), "");
    // The file was made by this process: its group is the exporter's own.
    assert_eq!(warnings(0o640), "");
    assert_eq!(warnings(0o440), "");
    if rustix::process::geteuid().is_root() {
        // Another group may read it: warned about.
        std::os::unix::fs::chown(&secret, None, Some(54_321)).unwrap();
        let w = warnings(0o640);
        assert!(
            w.contains("its group, which is not the exporter's own (mode 0640)"),
            "{w}"
        );
    }
}

/// The environment is an input of the loader: `AWARENESS_<SECTION>__<KEY>` sets keys of
/// [server], [poll] and [metrics] (the prefix in any case, `__` between section and key, a
/// variable with an empty part ignored); a problem names the key and the variable (in upper
/// case), never the value.
#[test]
fn environment_overrides_scalar_keys_of_three_sections() {
    let loader = |vars: &[(&str, &str)]| registry::loader().with_env(vars.to_vec());
    let c = loader(&[
        ("AWARENESS_POLL__INTERVAL", "15m"),
        ("AWARENESS_METRICS__PER_USER", "true"),
        ("awareness_poll__timeout", "90s"),
        ("AWARENESS_SERVER__LISTEN", "127.0.0.1:9999"),
        ("AWARENESS_METRICS__MAX_USERS", "7"),
        // Not overridable, and an empty part: both ignored.
        ("AWARENESS_CYBERPILOT__TOKEN", "SENTINEL-ENV-1"),
        ("AWARENESS_POLL____MAX_AGE", "SENTINEL-ENV-2"),
    ])
    .parse("[poll]\ninterval = \"1h\"\n", "t.toml")
    .unwrap();
    assert_eq!(c.poll.interval, Duration::from_secs(900), "over the file");
    assert!(c.metrics.per_user);
    assert_eq!(c.poll.timeout, Duration::from_secs(90));
    assert_eq!(c.server.listen, "127.0.0.1:9999");
    assert_eq!(c.metrics.max_users, 7);
    assert_eq!(c.poll.max_age, config::PollConfig::default().max_age);

    let e = loader(&[
        ("Awareness_Poll__Max_Age", "SENTINEL-ENV-3"),
        ("AWARENESS_METRICS__PER_USERS", "true"),
        ("AWARENESS_POLL__BOGUS", "1"),
    ])
    .parse("", "t.toml")
    .unwrap_err()
    .to_string();
    for expected in [
        "`poll.max_age`: must be a number and a unit (ms, s, m, h, d), such as \"90s\", \"15m\" or \"1h 30m\" (set by environment variable Awareness_Poll__Max_Age)",
        "`metrics.per_users`: unknown key; did you mean `per_user`? (set by environment variable AWARENESS_METRICS__PER_USERS)",
        "`poll.bogus`: unknown key",
    ] {
        assert!(e.contains(expected), "{expected}\nnot in\n{e}");
    }
    assert!(!e.contains("SENTINEL"), "{e}");
}

/// A duration's error lists the accepted forms; only a value that is not text is told to be
/// quoted (issue 23).
#[test]
fn a_duration_error_shows_the_accepted_forms() {
    let e = err("[poll]\ntimeout = \"60 seconds please\"\n");
    assert!(
        e.contains("`poll.timeout` (line 2): must be a number and a unit (ms, s, m, h, d)"),
        "{e}"
    );
    assert!(!e.contains("in quotes"), "{e}");
    let e = err("[poll]\ntimeout = 60\n");
    assert!(e.contains("must be a duration in quotes"), "{e}");
}

/// `:PORT` is every interface, as in Prometheus and its exporters (issue 23).
#[test]
fn a_listen_address_without_a_host_is_every_interface() {
    let c = registry::loader()
        .parse("[server]\nlisten = \":10020\"\n", "t.toml")
        .unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:10020");
    assert_eq!(config::listen_address(":10019").unwrap(), "0.0.0.0:10019");
    assert_eq!(
        config::listen_address("[::1]:10019").unwrap(),
        "[::1]:10019"
    );
    for good in [":10019", "[::1]:10019", "localhost:10019", "0.0.0.0:0"] {
        assert!(config::listen_address(good).is_ok(), "{good}");
    }
    for bad in ["nowhere", "localhost:http", ":", "a b:1"] {
        assert!(config::listen_address(bad).is_err(), "{bad}");
    }
}

/// No value in any config message (issue 24): a region, an endpoint, an auth mode or a URL
/// written wrong is described, never quoted; a file path or a variable's name is shown only
/// when it looks like one.
#[test]
fn no_config_message_shows_a_value() {
    for (text, key) in [
        (format!("[[knowbe4]]\naccount = \"a\"\ntoken = \"t\"\nregion = \"{SENTINEL}\"\n"), "knowbe4[0].region"),
        (format!("[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\napp_id = \"i\"\napp_key = \"k\"\naccess_key = \"a\"\nsecret_key = \"c2VjcmV0\"\nregion = \"{SENTINEL}\"\n"), "mimecast[0].region"),
        (format!("[[knowbe4]]\naccount = \"a\"\ntoken = \"t\"\nregion = \"us\"\nendpoints = [\"users\", \"{SENTINEL}\"]\n"), "knowbe4[0].endpoints"),
        (format!("[[cyberpilot]]\naccount = \"{SENTINEL}\\u0007\"\naccount_id = \"x\"\ntoken = \"t\"\n"), "cyberpilot[0].account"),
        (format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_file = \"a{SENTINEL}+/x==\"\n"), "cyberpilot[0].token_file"),
        (format!("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_env = \"UNSET_{SENTINEL}\"\n"), "cyberpilot[0].token_env"),
        (format!("[server]\nlisten = \"{SENTINEL}\"\n"), "server.listen"),
        (format!("[server]\nweb_config_file = [\"{SENTINEL}\"]\n"), "server.web_config_file"),
    ] {
        let e = err(&text);
        assert!(e.contains(&format!("`{key}`")), "{key} not named: {e}");
        assert!(!e.contains("SENTINEL"), "echoed:\n{e}\nfor:\n{text}");
    }
}

/// Issue 24 item 7: the config file and secret files are read as regular files only, opened
/// without blocking and with a cap. A FIFO (which would block the reader for ever), a device
/// (`/dev/zero` would grow the reader without end) and a file over 1 MiB are refused at once,
/// naming the key, never reading them.
#[cfg(unix)]
#[test]
fn config_and_secret_files_that_are_no_regular_files_are_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let big = dir.path().join("big");
    std::fs::write(&big, vec![b'a'; 2 << 20]).unwrap();
    let (done, results) = std::sync::mpsc::channel();
    let (fifo_path, big_path) = (fifo.clone(), big.clone());
    std::thread::spawn(move || {
        let block = |file: &std::path::Path| {
            format!(
                "[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken_file = \"{}\"\n",
                file.display()
            )
        };
        let mut out = vec![registry::loader().load(&fifo_path).unwrap_err().to_string()];
        for file in [
            fifo_path.as_path(),
            std::path::Path::new("/dev/zero"),
            &big_path,
        ] {
            out.push(err(&block(file)));
        }
        done.send(out).unwrap();
    });
    let out = results
        .recv_timeout(std::time::Duration::from_secs(30))
        .expect("no read blocks or runs on");
    assert!(
        out[0].contains("cannot be read") && out[0].contains("not a regular file"),
        "{}",
        out[0]
    );
    for e in &out[1..3] {
        assert!(
            e.contains("`cyberpilot[0].token_file` (line 4)") && e.contains("not a regular file"),
            "{e}"
        );
    }
    assert!(out[3].contains("larger than 1 MiB"), "{}", out[3]);
}
