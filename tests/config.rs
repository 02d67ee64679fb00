//! Config loading: every error names its key (and line), secrets never show, the example file
//! is valid.

use std::time::Duration;

use awareness_exporter::config::{
    self, CyberPilotAuth, MimecastAuth, MimecastEndpoint, SourceConfig,
};

const SENTINEL: &str = "SENTINEL-SECRET-7f3a9c";

fn err(text: &str) -> String {
    config::parse(text, "test.toml").unwrap_err().to_string()
}

#[test]
fn minimal_config_gets_contract_defaults() {
    let c = config::parse(
        "[[cyberpilot]]\naccount = \"acme\"\naccount_id = \"abc\"\ntoken = \"t\"\n",
        "t.toml",
    )
    .unwrap();
    assert_eq!(c.server.listen, "0.0.0.0:10019");
    assert_eq!(c.poll.interval, Duration::from_secs(1800));
    assert_eq!(c.poll.timeout, Duration::from_secs(60));
    assert_eq!(c.poll.max_age, Duration::from_secs(6 * 3600));
    assert!(!c.metrics.per_user);
    assert_eq!(c.metrics.max_users, 20000);
    let SourceConfig::CyberPilot(cp) = &c.sources[0] else {
        panic!("not cyberpilot")
    };
    assert_eq!(cp.base_url, "https://api.app.cyberpilot.io");
    assert_eq!(cp.page_size, 100);
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
        ("[[cyberpilot]]\naccount = \"a\"\naccount_id = \"x\"\ntoken = \"t\"\n[[cyberpilot]]\naccount = \"a\"\naccount_id = \"y\"\ntoken = \"t\"\n", "cyberpilot.account"),
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
    let c = config::parse(
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
    std::env::set_var("AWARENESS_TEST_APP_KEY", "appkey");
    let text = format!(
        "[[mimecast]]\naccount = \"a\"\nauth = \"hmac\"\nregion = \"eu\"\napp_id = \"i\"\napp_key_env = \"AWARENESS_TEST_APP_KEY\"\naccess_key_file = \"{p}\"\nsecret_key = \"c2VjcmV0\"\n",
        p = path.display()
    );
    let c = config::parse(&text, "t.toml").unwrap();
    let SourceConfig::Mimecast(m) = &c.sources[0] else {
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

    let e = err("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_env = \"AWARENESS_TEST_UNSET_VAR\"\n");
    assert!(e.contains("mimecast[0].client_secret_env"), "{e}");
    let e = err("[[mimecast]]\naccount = \"a\"\nclient_id = \"c\"\nclient_secret_file = \"/nonexistent/x\"\n");
    assert!(e.contains("mimecast[0].client_secret_file"), "{e}");
}

#[test]
fn example_config_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.example.toml"))
        .unwrap();
    for name in [
        "cyberpilot-acme.token",
        "globex.app_key",
        "globex.access_key",
    ] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    std::fs::write(dir.path().join("globex.secret_key"), "c2VjcmV0a2V5").unwrap();
    std::env::set_var("MIMECAST_ACME_CLIENT_SECRET", "s");
    let text = text.replace(
        "/etc/awareness-exporter/",
        &format!("{}/", dir.path().display()),
    );
    let c = config::parse(&text, "config.example.toml").unwrap();
    assert_eq!(c.sources.len(), 3);
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
    let c = config::parse(&text, "configmap.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.sources.is_empty());
}
