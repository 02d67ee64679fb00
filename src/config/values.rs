//! The value types a config declares, each checked as it is deserialized and reported in the
//! user's words, never with the value: bounded durations and whole numbers (for
//! `#[serde(deserialize_with = …)]`), http(s) URLs, secrets, the `account` label, names from a
//! closed list.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::de::{self, DeserializeOwned, Deserializer, IntoDeserializer};
use serde::Deserialize;

use super::Secret;

/// Duration bounds for [`duration`], in milliseconds.
pub(crate) const MS: u64 = 1;
pub(crate) const SEC: u64 = 1000;
pub(crate) const MINUTE: u64 = 60 * SEC;
pub(crate) const HOUR: u64 = 60 * MINUTE;
pub(crate) const DAY: u64 = 24 * HOUR;
pub(crate) const WEEK: u64 = 7 * DAY;

/// A duration in quotes from `MIN` to `MAX` milliseconds, as a `Duration` or an
/// `Option<Duration>`: `deserialize_with = "duration::<_, _, SEC, WEEK>"`. The upper bounds
/// catch unit slips ("30d" for "30m") before they silence a source for weeks.
pub(crate) fn duration<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: From<Duration>,
{
    let forms = "such as \"90s\", \"15m\" or \"1h 30m\"";
    // Only a value that is not text is told to be quoted.
    let quoted = format!("must be a duration in quotes, {forms}");
    let text = String::deserialize(d).map_err(|_| de::Error::custom(quoted))?;
    let show = |ms| humantime::format_duration(Duration::from_millis(ms));
    let problem = match humantime::parse_duration(text.trim()) {
        Ok(v) if (MIN..=MAX).contains(&(v.as_millis() as u64)) => return Ok(T::from(v)),
        Ok(_) => format!("must be from {} to {}", show(MIN), show(MAX)),
        Err(_) => format!("must be a number and a unit (ms, s, m, h, d), {forms}"),
    };
    Err(de::Error::custom(problem))
}

/// A whole number from `MIN` to `MAX`, as an integer type or an `Option<u64>`:
/// `deserialize_with = "int::<_, _, 1, 500>"`.
pub(crate) fn int<'de, D, T, const MIN: u64, const MAX: u64>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<u64>,
{
    let v = u64::try_from(i64::deserialize(d)?).ok();
    let v = v.filter(|v| (MIN..=MAX).contains(v)).map(T::try_from);
    let problem = || de::Error::custom(format!("must be between {MIN} and {MAX}"));
    v.and_then(Result::ok).ok_or_else(problem)
}

/// An id that goes into a URL path (an account, a tenant, an app) as a `String` or an
/// `Option<String>`: a GUID or a domain name, so letters, digits, '-', '.' and '_' only, and
/// it cannot change the path or the host.
pub(crate) fn id<'de, D: Deserializer<'de>, T: From<String>>(d: D) -> Result<T, D::Error> {
    let id = String::deserialize(d)?;
    let problem = "must be a GUID or a domain name (letters, digits, '-', '.', '_')";
    let id_char = |c: char| c.is_ascii_alphanumeric() || "-._".contains(c);
    match !id.is_empty() && id.chars().all(id_char) {
        true => Ok(T::from(id)),
        false => Err(de::Error::custom(problem)),
    }
}

/// An enum whose variants are written as names in the config (`endpoints = ["users"]`): it
/// gets `Deserialize` (read through [`Name`]), `ALL` (every variant, in order) and `name()`.
macro_rules! named {
    ($(#[$doc:meta])* $vis:vis enum $E:ident { $($V:ident = $name:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize)]
        $vis enum $E { $(#[serde(rename = $name)] $V),* }

        impl $E {
            $vis const ALL: [$E; [$($name),*].len()] = [$($E::$V),*];

            /// The name in the config (and of the section, where it is one).
            $vis fn name(self) -> &'static str {
                match self { $($E::$V => $name),* }
            }
        }

        impl $crate::config::values::Named for $E {
            const ALL: &'static [$E] = &$E::ALL;
        }
    };
}
pub(crate) use named;

/// What [`named!`] gives an enum for [`Names`]: every variant, in order.
pub(crate) trait Named: Copy + Ord + DeserializeOwned + 'static {
    const ALL: &'static [Self];
}

/// A list of names from a closed list (`endpoints = ["users", "phishing"]`), in the list's
/// order and each once: at least one; every name when the key is absent.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Names<T>(pub(crate) Vec<T>);

impl<T: Named> Default for Names<T> {
    fn default() -> Self {
        Names(T::ALL.to_vec())
    }
}

impl<'de, T: Named> Deserialize<'de> for Names<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let names = BTreeSet::<Name<T>>::deserialize(d)?;
        match names.is_empty() {
            true => Err(de::Error::custom("must name at least one")),
            false => Ok(Names(names.into_iter().map(|n| n.0).collect())),
        }
    }
}

/// A name from a closed list (an enum with `#[derive(Deserialize)]`), written as text only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Name<T>(pub(crate) T);

impl<'de, T: DeserializeOwned> Deserialize<'de> for Name<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        T::deserialize(name.trim().into_deserializer()).map(Name)
    }
}

/// An absolute http(s) URL without a user name or password, its trailing `/` removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct HttpUrl(String);

impl From<HttpUrl> for String {
    fn from(u: HttpUrl) -> String {
        u.0
    }
}

impl<'de> Deserialize<'de> for HttpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let url = url::Url::parse(text.trim()).ok();
        let problem = match url.filter(|u| matches!(u.scheme(), "https" | "http") && u.has_host()) {
            Some(u) if u.username().is_empty() && u.password().is_none() => {
                return Ok(HttpUrl(text.trim().trim_end_matches('/').to_string()))
            }
            Some(_) => "must not contain a user name or password",
            None => "must be an absolute https:// URL, such as https://api.example.com",
        };
        Err(de::Error::custom(problem))
    }
}

/// Whether `url` is plain http:// to a host other than this machine (credentials would cross
/// the network unencrypted).
pub(super) fn plain_http_to_another_host(url: &str) -> bool {
    let loopback = |u: &url::Url| match u.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    url::Url::parse(url.trim()).is_ok_and(|u| u.scheme() == "http" && !loopback(&u))
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match String::deserialize(d)? {
            empty if empty.is_empty() => Err(de::Error::custom("the secret is empty")),
            value => Ok(Secret::new(value)),
        }
    }
}

/// The `account` label's value: at most 128 characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Account(String);

impl From<Account> for String {
    fn from(a: Account) -> String {
        a.0
    }
}

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let a = String::deserialize(d)?;
        let problem = "must be 1 to 128 characters with no control characters";
        match a.trim().is_empty() || a.len() > 128 || a.chars().any(char::is_control) {
            true => Err(de::Error::custom(problem)),
            false => Ok(Account(a)),
        }
    }
}
