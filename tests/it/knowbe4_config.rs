//! The `[[knowbe4]]` block: regions, the key and its secrets, page size, endpoints, and the
//! request budget `--check-config` holds the interval to.

use std::process::Command;

use awareness_exporter::registry;
use awareness_exporter::testing::sources::knowbe4::config::{Endpoint, KnowBe4Config};

const KEY: &str = "SENTINEL-KB4-KEY-51e0";

fn ok(text: &str) -> KnowBe4Config {
    let c = registry::loader()
        .parse(text, "t.toml")
        .unwrap_or_else(|e| panic!("{e}"));
    c.sources[0].get::<KnowBe4Config>().unwrap().clone()
}

fn err(text: &str) -> String {
    let e = registry::loader()
        .parse(text, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(!e.contains(KEY), "the key never shows: {e}");
    e
}

fn block(extra: &str) -> String {
    format!("[[knowbe4]]\naccount = \"acme\"\ntoken = \"{KEY}\"\n{extra}")
}

#[test]
fn a_region_names_its_host_and_defaults_are_the_vendors() {
    let c = ok(&block("region = \"eu\"\n"));
    assert_eq!(c.base_url, "https://eu.api.knowbe4.com");
    assert_eq!(c.region.as_deref(), Some("eu"));
    assert_eq!(c.page_size, 500);
    assert_eq!((c.requests_per_second, c.requests_per_minute), (4, 50));
    assert_eq!(c.endpoints, Endpoint::ALL.to_vec());
    for (r, host) in [
        ("us", "https://us.api.knowbe4.com"),
        ("CA", "https://ca.api.knowbe4.com"),
        ("uk", "https://uk.api.knowbe4.com"),
        ("de", "https://de.api.knowbe4.com"),
    ] {
        assert_eq!(ok(&block(&format!("region = \"{r}\"\n"))).base_url, host);
    }
    let c = ok(&block("base_url = \"https://kb4.proxy.example/\"\n"));
    assert_eq!(
        (c.base_url.as_str(), c.region),
        ("https://kb4.proxy.example", None)
    );
}

#[test]
fn region_mistakes_name_the_key_and_the_regions() {
    let e = err(&block("region = \"asia\"\n"));
    assert!(
        e.contains("`knowbe4[0].region`") && e.contains("us, eu, ca, uk, de"),
        "{e}"
    );
    let e = err(&block(""));
    assert!(
        e.contains("`knowbe4[0].region`") && e.contains("is required"),
        "{e}"
    );
    let e = err(&block(
        "region = \"eu\"\nbase_url = \"https://x.example\"\n",
    ));
    assert!(e.contains("either base_url or region"), "{e}");
}

#[test]
fn page_size_is_at_most_500_and_endpoints_are_known() {
    let e = err(&block("region = \"us\"\npage_size = 501\n"));
    assert!(
        e.contains("`knowbe4[0].page_size`") && e.contains("between 1 and 500"),
        "{e}"
    );
    let c = ok(&block("region = \"us\"\nendpoints = [\"phishing\"]\n"));
    assert_eq!(
        c.endpoints,
        vec![Endpoint::Account, Endpoint::Phishing],
        "account always"
    );
    let e = err(&block("region = \"us\"\nendpoints = [\"phish\"]\n"));
    assert!(
        e.contains("`knowbe4[0].endpoints`")
            && e.contains("one of account, users, training, phishing"),
        "{e}"
    );
    assert!(!e.contains("\"phish\""), "the value is never shown: {e}");
    let e = err(&block("region = \"us\"\nper_page = 10\n"));
    assert!(e.contains("per_page") && e.contains("line 5"), "{e}");
}

#[test]
fn the_key_is_required_and_may_come_from_a_file_or_the_environment() {
    let e = err("[[knowbe4]]\naccount = \"a\"\nregion = \"us\"\n");
    assert!(
        e.contains("`knowbe4[0].token`") && e.contains("token_file"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kb4.key");
    std::fs::write(&path, format!("{KEY}\n")).unwrap();
    let c = ok(&format!(
        "[[knowbe4]]\naccount = \"a\"\nregion = \"us\"\ntoken_file = {:?}\n",
        path.display().to_string()
    ));
    assert_eq!(c.token.expose(), KEY);
    assert!(!format!("{c:?}").contains(KEY), "Debug redacts the key");
}

#[test]
fn an_interval_the_daily_quota_cannot_carry_is_refused() {
    // 2,000 licensed users at 500 a page: about 90 requests a poll; 4,000 a day, planned 3,600.
    let e = err(&block(
        "region = \"us\"\nlicensed_users = 2000\n\n[poll]\ninterval = \"30m\"\n",
    ));
    assert!(e.contains("`knowbe4[0].interval`"), "{e}");
    assert!(
        e.contains("about 90 requests a poll") && e.contains("48 polls a day"),
        "{e}"
    );
    assert!(
        e.contains("4000 requests a day") && e.contains("at least 36m"),
        "{e}"
    );
    // Its own interval, long enough, fits.
    ok(&block(
        "region = \"us\"\nlicensed_users = 2000\ninterval = \"1h\"\n\n[poll]\ninterval = \"30m\"\n",
    ));
    // Without licensed_users a small account is assumed: only very short intervals fail.
    assert!(err(&block("region = \"us\"\ninterval = \"1m\"\n")).contains("at least 5m"));
    ok(&block("region = \"us\"\ninterval = \"5m\"\n"));
}

#[test]
fn check_config_explains_the_budget_and_never_shows_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        block("region = \"eu\"\nlicensed_users = 20000\ninterval = \"1h\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .args(["--check-config", "--config.file"])
        .arg(&path)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("knowbe4[0].interval") && text.contains("at least"),
        "{text}"
    );
    assert!(!text.contains(KEY));
    std::fs::write(
        &path,
        block("region = \"eu\"\nlicensed_users = 20000\ninterval = \"6h\"\n"),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_awareness-exporter"))
        .args(["--check-config", "--config.file"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("https://eu.api.knowbe4.com (region eu)"),
        "{text}"
    );
    assert!(text.contains("daily quota 22000"), "{text}");
    assert!(
        text.contains(
            "a 401 from this host means a wrong or disabled key, or an account of another region"
        ),
        "{text}"
    );
    assert!(!text.contains(KEY));
}
