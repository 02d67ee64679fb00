//! The lints that hold the code to the charter are declared where the compiler reads them: no
//! `unsafe` in any target, no `unwrap`/`expect` and no unreachable `pub` in the library and the
//! binary (tests may unwrap). `cargo clippy --all-targets -- -D warnings` enforces them.

fn read(path: &str) -> String {
    std::fs::read_to_string(format!("{}/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn the_lints_are_declared() {
    let cargo = read("Cargo.toml");
    assert!(cargo.contains("[workspace.lints.rust]\nunsafe_code = \"forbid\""));
    for member in [
        "Cargo.toml",
        "crates/awareness-sim/Cargo.toml",
        "crates/mimecast-signature/Cargo.toml",
    ] {
        assert!(
            read(member).contains("[lints]\nworkspace = true"),
            "{member} inherits the workspace's lints"
        );
    }
    for file in ["src/lib.rs", "src/main.rs"] {
        let text = read(file);
        assert!(
            text.contains("#![deny(clippy::unwrap_used, clippy::expect_used)]"),
            "{file}"
        );
        assert!(text.contains("#![deny(unreachable_pub)]"), "{file}");
    }
    let clippy = read("clippy.toml");
    assert!(clippy.contains("allow-unwrap-in-tests = true"));
    assert!(clippy.contains("allow-expect-in-tests = true"));
}

/// The `crate::<module>` paths a file's code (comments and `#[cfg(test)]` modules left out)
/// names.
fn imports(path: &std::path::Path) -> std::collections::BTreeSet<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    let mut found = std::collections::BTreeSet::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let module: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(module);
        }
        // `use crate::{a, b}` groups.
        if let Some(group) = line.trim().strip_prefix("use crate::{") {
            for m in group.split([',', '}', ':', ' ']).filter(|m| !m.is_empty()) {
                found.insert(m.to_string());
            }
        }
    }
    found
}

fn files(dir: &str) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![std::path::PathBuf::from(format!(
        "{}/{dir}",
        env!("CARGO_MANIFEST_DIR")
    ))];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    out
}

/// The layer rules are the table "Who imports whom" of docs/architecture.md: each row's
/// modules (paths, or bare names under src/) and the modules they never use.
fn layer_rules() -> Vec<(Vec<String>, Vec<String>)> {
    let doc = read("docs/architecture.md");
    let table = doc
        .split("| module | may use | never uses |")
        .nth(1)
        .expect("docs/architecture.md has the layer table");
    let cells = |cell: &str| -> Vec<String> {
        cell.split(',')
            .map(|c| c.trim().trim_matches('`').to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let rules: Vec<_> = table
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|row| {
            let columns: Vec<&str> = row.split('|').collect();
            let modules = cells(columns[1])
                .into_iter()
                .map(|m| {
                    if m.starts_with("src/") {
                        m
                    } else {
                        format!("src/{m}.rs")
                    }
                })
                .collect();
            (modules, cells(columns[3]))
        })
        .collect();
    assert!(rules.len() >= 5, "the layer table has its rows: {rules:?}");
    rules
}

/// Data flows one way (issue 14 point 2): identity and outcome types come from `model`, so
/// config knows no snapshot or store, sources know no store, and the serving side (store,
/// scrape bodies, landing page, server) knows no vendor, config or transport. The rules are
/// docs/architecture.md's table, so the doc is what is enforced.
#[test]
fn the_layers_import_one_way() {
    let mut wrong = Vec::new();
    for (paths, forbidden) in layer_rules() {
        for path in paths.iter().flat_map(|p| files(p.trim_end_matches('/'))) {
            for module in imports(&path) {
                if forbidden.contains(&module) {
                    wrong.push(format!("{} uses crate::{module}", path.display()));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The types of src/model.rs have one path (issue 14 point 2): no module re-exports them under
/// its own name (`snapshot::SourceKey`, `store::PollOutcome`, …), so every file imports
/// `crate::model` / `awareness_exporter::model`.
#[test]
fn the_model_types_have_one_path() {
    let mut wrong = Vec::new();
    for path in files("src") {
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines().map(str::trim_start) {
            let reexport = line.starts_with("pub use") || line.starts_with("pub(crate) use");
            if reexport && line.contains("model::") {
                wrong.push(format!("{}: {line}", path.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// The core knows vendors only through the registry (issue 14 point 1): no file outside
/// src/sources/ names a registered platform in its code (comments and `#[cfg(test)]` modules
/// left out).
#[test]
fn no_vendor_is_named_outside_its_folder() {
    use awareness_exporter::registry;
    let mut core = files("src");
    core.retain(|p| !p.starts_with(format!("{}/src/sources", env!("CARGO_MANIFEST_DIR"))));
    let mut named = Vec::new();
    for path in core {
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            let line = line
                .split("//")
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            for platform in registry::platforms() {
                if line.contains(platform) {
                    named.push(format!("{}:{}: {platform}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(named.is_empty(), "{named:#?}");
}
