//! Lenient field decoders for vendor JSON: numbers that arrive as strings, ids that are numbers
//! or text, nulls where a value was documented. Anything else is an error for that row only.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

/// A JSON scalar as a vendor sent it; `Null` for null or absent. Arrays and objects are errors.
enum Scalar {
    Number(f64),
    Text(String),
    Flag(bool),
    Null,
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a number, a string, a boolean or null")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
        Ok(Scalar::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
        Ok(Scalar::Text(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
        Ok(Scalar::Flag(v))
    }
    fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
        Ok(Scalar::Null)
    }
}

fn invalid<E: de::Error>(what: &'static str, expected: &'static str) -> E {
    E::invalid_value(de::Unexpected::Other(what), &expected)
}

/// A number given as a number, a numeric string, or null/absent/empty text (→ `None`); a value
/// that is not finite reads as `None` too.
pub(crate) fn number<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match d.deserialize_any(ScalarVisitor)? {
        Scalar::Number(v) => Ok(v.is_finite().then_some(v)),
        Scalar::Text(t) if t.trim().is_empty() => Ok(None),
        Scalar::Text(t) => match t.trim().parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(invalid("non-numeric text", "a number or a numeric string")),
        },
        Scalar::Flag(_) => Err(invalid("a boolean", "a number or a numeric string")),
        Scalar::Null => Ok(None),
    }
}

/// Text given as a string or a scalar (ids are sometimes numbers), or null/absent.
pub(crate) fn text<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match d.deserialize_any(ScalarVisitor)? {
        Scalar::Number(v) => Some(v.to_string()),
        Scalar::Text(t) => Some(t),
        Scalar::Flag(b) => Some(b.to_string()),
        Scalar::Null => None,
    })
}

/// A flag given as a boolean, 0/1 or text, or null/absent.
pub(crate) fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    match d.deserialize_any(ScalarVisitor)? {
        Scalar::Flag(b) => Ok(Some(b)),
        Scalar::Number(v) => Ok(Some(v != 0.0)),
        Scalar::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Ok(Some(true)),
            "false" | "no" | "0" | "" => Ok(Some(false)),
            _ => Err(invalid("text", "a boolean, 0/1 or \"true\"/\"false\"")),
        },
        Scalar::Null => Ok(None),
    }
}

/// A link to the next page; null, absent or empty text is none.
pub(crate) fn link<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|l| !l.trim().is_empty()))
}

/// The longest label value a vendor string becomes, in bytes: longer text is cut (at a
/// character boundary) and ends in [`CUT_MARK`], so /metrics and memory are bounded by
/// configuration (`metrics.max_label_values` values of at most this many bytes a label), not
/// by what a vendor sends.
pub(crate) const MAX_LABEL_BYTES: usize = 256;
pub(crate) const CUT_MARK: &str = "…";

thread_local! {
    /// Label values cut on this thread since [`take_cut`] was last called.
    static CUT: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many label values were cut on this thread since the last call (the paging engine asks
/// after each page it decodes).
pub(crate) fn take_cut() -> u64 {
    CUT.with(|c| c.replace(0))
}

/// `value` cut to [`MAX_LABEL_BYTES`], marked and counted when it was longer.
pub(crate) fn cut(mut value: String) -> String {
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
pub(crate) fn label<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(text(d)?.map(cut))
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
