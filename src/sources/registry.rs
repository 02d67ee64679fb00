//! The one list of vendors. A vendor is a folder under `src/sources/` plus one line in
//! [`VENDORS`]; the core (config, main, poller, landing page, transport) knows vendors only
//! through this list.
//!
//! A registration (a [`Registration`] declared as one `static VENDOR` per vendor; the core
//! sees it as a [`Vendor`]) owns the platform name (the `platform`
//! label and the `[[table]]` of the config); as a [`VendorConfig`] it reads one `[[table]]`
//! block into the vendor's [`crate::config::AccountConfig`]. It builds the [`Source`] of an
//! account.

use std::sync::Arc;

use crate::config::{AccountConfig, Block, Loader, SourceConfig, VendorConfig};
use crate::model::Platform;
use crate::sources::{cyberpilot, defender, knowbe4, mimecast, proofpoint, Source, SourceContext};

/// Every vendor the exporter can poll, in the order their `[[table]]` blocks are read. Adding a
/// platform adds one line here.
pub static VENDORS: &[&dyn Vendor] = &[
    &cyberpilot::VENDOR,
    &defender::VENDOR,
    &knowbe4::VENDOR,
    &mimecast::VENDOR,
    &proofpoint::VENDOR,
];

/// A platform's registration: its config ([`VendorConfig`]), its product name and its source.
pub trait Vendor: VendorConfig {
    /// The product's name for people ("Mimecast Awareness Training"), for help texts.
    fn title(&self) -> &'static str;

    /// The source that polls `config`, an account this vendor's `read_account` made (`None`
    /// for another vendor's).
    fn build(&self, config: &SourceConfig, ctx: SourceContext) -> Option<Arc<dyn Source>>;
}

/// What a vendor folder declares, once, as its `static VENDOR`: its names, its config block's
/// secret keys and reader, and the constructor of its source.
pub(crate) struct Registration<C, S> {
    pub(crate) platform: Platform,
    pub(crate) title: &'static str,
    pub(crate) secret_keys: &'static [&'static str],
    /// Reads one `[[<platform>]]` block (`None`: not usable, every problem reported).
    pub(crate) read: fn(Block<'_>) -> Option<C>,
    pub(crate) source: fn(C, SourceContext) -> S,
}

impl<C: AccountConfig + Clone, S> VendorConfig for Registration<C, S> {
    fn platform(&self) -> Platform {
        self.platform
    }
    fn secret_keys(&self) -> &'static [&'static str] {
        self.secret_keys
    }
    fn read_account(&self, block: Block<'_>) -> Option<Arc<dyn AccountConfig>> {
        Some(Arc::new((self.read)(block)?))
    }
}

impl<C: AccountConfig + Clone, S: Source + 'static> Vendor for Registration<C, S> {
    fn title(&self) -> &'static str {
        self.title
    }
    fn build(&self, config: &SourceConfig, ctx: SourceContext) -> Option<Arc<dyn Source>> {
        let config = config.get::<C>()?.clone();
        Some(Arc::new((self.source)(config, ctx)))
    }
}

/// The config loader for every registered vendor, with the process environment.
pub fn loader() -> Loader {
    Loader::new(VENDORS.iter().map(|&v| v as &'static dyn VendorConfig))
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
