//! The one list of vendors. A vendor is a folder under `src/sources/` plus one line in
//! [`VENDORS`]; the core (config, main, poller, landing page, transport) knows vendors only
//! through this list and the two traits below.
//!
//! - [`Vendor`]: the registration, one `static` per vendor. It owns the platform name (the
//!   `platform` label and the `[[table]]` of the config), reads and validates one `[[table]]`
//!   block into an [`AccountConfig`].
//! - [`AccountConfig`]: one configured account, validated, secrets resolved. It builds the
//!   [`Source`], describes itself for `--check-config` and for the landing page.

use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Block;
use crate::model::{Platform, SourceInfo};
use crate::sources::{cyberpilot, knowbe4, mimecast, Source, SourceContext};

/// Every vendor the exporter can poll, in the order their `[[table]]` blocks are read. Adding a
/// platform adds one line here.
pub static VENDORS: &[&dyn Vendor] = &[&cyberpilot::VENDOR, &knowbe4::VENDOR, &mimecast::VENDOR];

/// A platform's registration.
pub trait Vendor: Send + Sync {
    /// The platform name: the `platform` label's value and the config's `[[table]]` name.
    fn platform(&self) -> Platform;

    /// The product's name for people ("Mimecast Awareness Training"), for help texts.
    fn title(&self) -> &'static str;

    /// Reads one `[[<platform>]]` block. Every problem is reported on `block` (which names
    /// the key and its line, and never shows a value); `None` when the block is not usable.
    /// Call [`Block::finish`] once every key is read, so unknown keys are reported.
    fn read_account(&self, block: Block<'_>) -> Option<Arc<dyn AccountConfig>>;

    /// The names of this vendor's secret keys (each also accepted as `<name>_file` and
    /// `<name>_env`), so tests can check none of them is ever echoed.
    fn secret_keys(&self) -> &'static [&'static str];
}

/// One configured account of a vendor: validated, secrets resolved. Derive `Debug` (secrets
/// are redacted by [`crate::config::Secret`]), `Clone` and `PartialEq`: a reload restarts a
/// source only when its config is not equal to the running one.
pub trait AccountConfig: DynEq + fmt::Debug + Send + Sync + 'static {
    /// The value of the `account` label.
    fn account(&self) -> &str;
    /// The account's own `interval`, if it sets one.
    fn interval(&self) -> Option<Duration>;
    /// What `--check-config` prints after the source's key: the URL and the settings that
    /// matter, never a secret.
    fn describe(&self) -> String;
    /// What the landing page shows: the vendor URL (no credentials, no query) and auth mode.
    fn info(&self) -> SourceInfo;
    /// Every secret of the account (tokens, passwords, keys), which its transport scrubs from
    /// any vendor text before it is kept, logged or shown.
    fn secrets(&self) -> Vec<&str>;
    /// The source that polls this account (its engine from
    /// [`SourceContext::engine`](crate::sources::SourceContext::engine)).
    fn build(&self, ctx: SourceContext) -> Arc<dyn Source>;
}

/// Equality across `dyn AccountConfig`, implemented for every `PartialEq` type: vendors derive
/// `PartialEq` and get it for free.
pub trait DynEq {
    fn as_any(&self) -> &dyn Any;
    fn dyn_eq(&self, other: &dyn Any) -> bool;
}

impl<T: PartialEq + Any> DynEq for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn dyn_eq(&self, other: &dyn Any) -> bool {
        other.downcast_ref::<T>().is_some_and(|o| o == self)
    }
}

/// The registration of `platform`, if there is one.
pub fn vendor(platform: Platform) -> Option<&'static dyn Vendor> {
    VENDORS.iter().copied().find(|v| v.platform() == platform)
}

/// Every registered platform name, in registration order.
pub fn platforms() -> impl Iterator<Item = &'static str> {
    VENDORS.iter().map(|v| v.platform().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_names_are_unique_lower_case_label_values() {
        let mut seen = std::collections::BTreeSet::new();
        for name in platforms() {
            assert!(seen.insert(name), "{name} registered twice");
            assert!(
                !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(vendor(Platform::new(name)).is_some());
        }
        assert!(vendor(Platform::new("nope")).is_none());
    }
}
