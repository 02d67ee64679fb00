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
