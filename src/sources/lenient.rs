//! Lenient field decoders for vendor JSON: numbers that arrive as strings, ids that are numbers
//! or text, nulls where a value was documented. Anything else is an error for that row only.

use serde::de::{self, Deserializer, Visitor};
use std::fmt;

struct NumberVisitor;

impl<'de> Visitor<'de> for NumberVisitor {
    type Value = Option<f64>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a numeric string or null")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(v.is_finite().then_some(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let t = v.trim();
        if t.is_empty() {
            return Ok(None);
        }
        t.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| E::invalid_value(de::Unexpected::Str("non-numeric text"), &self))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(NumberVisitor)
    }
}

/// A number given as a number, a numeric string, or null/absent (→ `None`).
pub fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    d.deserialize_any(NumberVisitor)
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string, a number or null")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(TextVisitor)
    }
}

/// Text given as a string or a scalar (ids are sometimes numbers), or null/absent.
pub fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    d.deserialize_any(TextVisitor)
}

/// The longest label value a vendor string becomes, in bytes: longer text is cut (at a
/// character boundary) and ends in [`CUT_MARK`], so /metrics and memory are bounded by
/// configuration (`metrics.max_label_values` values of at most this many bytes a label), not
/// by what a vendor sends.
pub const MAX_LABEL_BYTES: usize = 256;
pub const CUT_MARK: &str = "…";

thread_local! {
    /// Label values cut on this thread since [`take_cut`] was last called.
    static CUT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many label values were cut on this thread since the last call (the paging engine asks
/// after each page it decodes).
pub fn take_cut() -> u64 {
    CUT.with(|c| c.replace(0))
}

/// `value` cut to [`MAX_LABEL_BYTES`], marked and counted when it was longer.
pub fn cut(mut value: String) -> String {
    if value.len() > MAX_LABEL_BYTES {
        let mut end = MAX_LABEL_BYTES - CUT_MARK.len();
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        value.truncate(end);
        value.push_str(CUT_MARK);
        CUT.with(|c| c.set(c.get() + 1));
    }
    value
}

/// Text that becomes a label value (a branch, a department, a campaign's name): as
/// [`text`], cut to [`MAX_LABEL_BYTES`].
pub fn label<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(text(d)?.map(cut))
}

struct FlagVisitor;

impl<'de> Visitor<'de> for FlagVisitor {
    type Value = Option<bool>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a boolean, 0/1, \"true\"/\"false\" or null")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v != 0))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v != 0))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" | "" => Ok(Some(false)),
            _ => Err(E::invalid_value(de::Unexpected::Str("text"), &self)),
        }
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(FlagVisitor)
    }
}

/// A flag given as a boolean, 0/1 or text, or null/absent.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    d.deserialize_any(FlagVisitor)
}

/// True when most rows of an answer were skipped (malformed or without identity): the answer
/// is garbage, and publishing the few good rows would present it as the truth.
pub fn mostly_skipped(good: u64, skipped: u64) -> bool {
    skipped > good
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    struct Row {
        #[serde(default, deserialize_with = "super::number")]
        n: Option<f64>,
        #[serde(default, deserialize_with = "super::text")]
        t: Option<String>,
        #[serde(default, deserialize_with = "super::flag")]
        f: Option<bool>,
    }

    #[test]
    fn long_labels_are_cut_marked_and_counted() {
        super::take_cut();
        let long = "é".repeat(300);
        let cut = super::cut(long);
        assert!(cut.len() <= super::MAX_LABEL_BYTES && cut.ends_with(super::CUT_MARK));
        assert_eq!(super::cut("short".into()), "short");
        assert_eq!(super::take_cut(), 1);
        assert_eq!(super::take_cut(), 0);
    }

    #[test]
    fn mostly_skipped_means_more_bad_rows_than_good() {
        assert!(!super::mostly_skipped(0, 0));
        assert!(!super::mostly_skipped(9, 1));
        assert!(!super::mostly_skipped(5, 5));
        assert!(super::mostly_skipped(4, 5));
        assert!(super::mostly_skipped(0, 10_000));
    }

    #[test]
    fn accepts_documented_variants() {
        let r: Row = serde_json::from_str(r#"{"n":"4","t":12,"f":"true"}"#).unwrap();
        assert_eq!(
            (r.n, r.t.as_deref(), r.f),
            (Some(4.0), Some("12"), Some(true))
        );
        let r: Row = serde_json::from_str(r#"{"n":null,"t":null,"f":null}"#).unwrap();
        assert_eq!((r.n, r.t, r.f), (None, None, None));
        let r: Row = serde_json::from_str("{}").unwrap();
        assert_eq!((r.n, r.t, r.f), (None, None, None));
        assert!(serde_json::from_str::<Row>(r#"{"n":"many"}"#).is_err());
        assert!(serde_json::from_str::<Row>(r#"{"n":{}}"#).is_err());
    }
}
