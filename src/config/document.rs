//! The config as figment layers — the TOML file, then `AWARENESS_<SECTION>__<KEY>` variables
//! over [server], [poll] and [metrics] — and where each key was written, for messages. Keys are
//! dotted paths: `mimecast.1.client_secret_file`.

use std::collections::BTreeMap;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::Figment;
use toml_edit::ImDocument;
use zeroize::Zeroizing;

use super::ConfigError;

/// The sections whose keys `AWARENESS_<SECTION>__<KEY>` may set.
const OVERRIDABLE: [&str; 3] = ["server", "poll", "metrics"];

/// The file as written (for the line of each key), and the merged tree with the environment's
/// overrides. A syntax error names its line and column, never the text around it.
pub(super) fn read<'a>(
    text: &'a str,
    origin: &str,
    env: &BTreeMap<String, Zeroizing<String>>,
) -> Result<(ImDocument<&'a str>, Dict), ConfigError> {
    let problem = |problem| ConfigError::File {
        path: origin.to_string(),
        problem,
    };
    let doc = ImDocument::parse(text).map_err(|e| {
        let (line, column) = line_col(text, e.span().map_or(0, |s| s.start));
        // The first line is the problem; the rest lists what the parser expected.
        let lines = e.message().lines().map(str::trim);
        let message: Vec<&str> = lines.filter(|l| !l.is_empty()).collect();
        let message = message.join("; ");
        problem(format!("line {line}, column {column}: {message}"))
    })?;
    let mut layers = Figment::from(Toml::string(text));
    for (name, value) in env {
        if let Some(key) = overridden_key(name) {
            // Booleans and numbers as such, anything else as text (so `15m` needs no quotes).
            let Ok(value) = value.parse::<Value>();
            layers = layers.merge(Serialized::default(&key, value));
        }
    }
    let tree = layers
        .extract::<Dict>()
        .map_err(|_| problem("it is not TOML".into()))?;
    Ok((doc, tree))
}

/// The key the variable `name` sets, as figment's `Env::prefixed("AWARENESS_").split("__")`
/// would: the prefix in any case, keys lower-cased, a variable with an empty part left out.
pub(super) fn overridden_key(name: &str) -> Option<String> {
    let name = name.to_ascii_lowercase();
    let parts: Vec<&str> = name.strip_prefix("awareness_")?.split("__").collect();
    let overridable = parts.len() > 1 && OVERRIDABLE.contains(&parts[0]);
    (overridable && !parts.contains(&"")).then(|| parts.join("."))
}

/// A key as the user sees it: `poll.interval`, `mimecast[1].client_secret_file`.
pub(super) fn key_name(key: &str) -> String {
    let part = |p: &str| match p.parse::<usize>() {
        Ok(i) => format!("[{i}]"),
        Err(_) => format!(".{p}"),
    };
    let name: String = key.split('.').map(part).collect();
    name.trim_start_matches('.').to_string()
}

/// The line of `key` in the file, or of the nearest table written that holds it (the
/// `[[mimecast]]` line of `mimecast.1.account` when the key is missing).
pub(super) fn line(doc: &ImDocument<&str>, key: &str) -> Option<usize> {
    let (mut item, mut line) = (doc.as_item(), None);
    for part in key.split('.') {
        let Some(next) = part
            .parse::<usize>()
            .map_or(item.get(part), |i| item.get(i))
        else {
            break;
        };
        item = next;
        line = item.span().map(|s| line_col(doc.raw(), s.start).0).or(line);
    }
    line
}

/// 1-based line and column of a byte offset (one past the text, or inside a character: of
/// the text's end).
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (before.matches('\n').count() + 1, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> BTreeMap<String, Zeroizing<String>> {
        vars.iter()
            .map(|(k, v)| (k.to_string(), Zeroizing::new(v.to_string())))
            .collect()
    }

    #[test]
    fn the_environment_sets_keys_of_three_sections_only() {
        let vars = env(&[
            ("AWARENESS_POLL__INTERVAL", "15m"),
            ("Awareness_Metrics__Per_User", "true"),
            ("AWARENESS_CYBERPILOT__TOKEN", "secret"),
            ("AWARENESS_POLL____TIMEOUT", "1m"),
            ("AWARENESS_POLLX__INTERVAL", "1m"),
        ]);
        let (doc, tree) = read("[poll]\ntimeout = \"2m\"\n", "t.toml", &vars).unwrap();
        let got = format!("{tree:?}");
        assert!(
            got.contains("15m") && got.contains("2m") && got.contains("true"),
            "{got}"
        );
        assert!(!got.contains("secret") && !got.contains("\"1m\""), "{got}");
        let key = overridden_key("Awareness_Metrics__Per_User");
        assert_eq!(key.as_deref(), Some("metrics.per_user"));
        assert_eq!(overridden_key("AWARENESS_CYBERPILOT__TOKEN"), None);
        assert_eq!(line(&doc, "poll.timeout"), Some(2));
    }

    #[test]
    fn lines_of_keys_blocks_and_inline_tables() {
        let text = "[[m]]\na = 1\n\n[[m]]\nb = 2\n[m.login]\nc = 3\n[n]\nd = { e = 1 }\n";
        let (doc, _) = read(text, "t", &BTreeMap::new()).unwrap();
        assert_eq!(line(&doc, "m.1.b"), Some(5));
        assert_eq!(line(&doc, "m.1"), Some(4));
        assert_eq!(line(&doc, "m.1.login.c"), Some(7));
        assert_eq!(line(&doc, "m.1.missing"), Some(4));
        assert_eq!(line(&doc, "n.d.e"), Some(9));
        assert_eq!(key_name("m.1.login"), "m[1].login");
    }

    #[test]
    fn line_col_never_panics() {
        assert_eq!(line_col("ä\nb", 3), (2, 1));
        assert_eq!(
            line_col("ä\nb", 1),
            (2, 2),
            "inside a character: the whole text"
        );
        assert_eq!(line_col("a\nb", 2), (2, 1));
        assert_eq!(line_col("a", 99), (1, 2));
    }
}
