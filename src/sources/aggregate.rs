//! Folding rows into aggregates as pages arrive, so a poll holds per-label sums, not its rows.
//!
//! A poll of 1M users keeps ~150 series; holding the rows until the end cost as much memory as
//! the JSON received. Each page is now parsed, folded into these accumulators and dropped:
//! - [`SeenKeys`]: which users were already counted, exactly;
//! - [`ByLabel`]: sums per branch or department, with `metrics.max_label_values` applied when
//!   the poll ends (the rarest values folded into `__other__`, counted and warned);
//! - [`UserRows`]: per-user rows, only with `per_user`, never more than `max_users`.
//!
//! A failed page fails the poll before anything is published, so an accumulator is either
//! rendered whole or dropped: whole-or-nothing publishing is unchanged.

use std::collections::btree_map::{BTreeMap, Entry};
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::{Mutex, MutexGuard};

use hashbrown::HashTable;

use crate::model::SourceKey;
use crate::stats::ApiStats;

/// Keys (user ids, emails) already counted in one listing, compared exactly: a second row
/// with the same key is dropped, two different keys are never taken for one. The keys' text
/// sits end to end in one string and the table holds their places (8 bytes a key, plus the
/// key itself), so a million users cost tens of MiB, not one allocation each.
#[derive(Default)]
pub struct SeenKeys {
    hasher: RandomState,
    text: String,
    /// (start, length) of each key in `text`.
    table: HashTable<(u32, u32)>,
}

impl SeenKeys {
    /// True the first time `key` is offered.
    pub fn first_time(&mut self, key: &str) -> bool {
        let (hasher, text) = (&self.hasher, &self.text);
        let at = |&(start, len): &(u32, u32)| &text[start as usize..(start + len) as usize];
        let hash = hasher.hash_one(key);
        if self.table.find(hash, |k| at(k) == key).is_some() {
            return false;
        }
        // Past 4 GiB of keys (poll.max_rows keeps a poll far below): counted, not kept.
        let Ok(start) = u32::try_from(text.len()) else {
            return true;
        };
        let Some(len) = u32::try_from(key.len())
            .ok()
            .filter(|l| start.checked_add(*l).is_some())
        else {
            return true;
        };
        self.text.push_str(key);
        let at = |&(start, len): &(u32, u32)| &self.text[start as usize..(start + len) as usize];
        let rehash = |k: &(u32, u32)| self.hasher.hash_one(at(k));
        self.table.insert_unique(hash, (start, len), rehash);
        true
    }

    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

/// Partial sums that can be added together (the rare label values folded into one).
pub(crate) trait Merge {
    fn absorb(&mut self, other: Self);
}

impl Merge for f64 {
    fn absorb(&mut self, other: Self) {
        *self += other;
    }
}

impl<const N: usize> Merge for [f64; N] {
    fn absorb(&mut self, other: Self) {
        for (a, b) in self.iter_mut().zip(other) {
            *a += b;
        }
    }
}

/// `None` is "no row of this kind": it stays absent unless one side has some.
impl<T: Merge> Merge for Option<T> {
    fn absorb(&mut self, other: Self) {
        match (self.as_mut(), other) {
            (Some(a), Some(b)) => a.absorb(b),
            (None, b) => *self = b,
            (_, None) => {}
        }
    }
}

impl<K: Ord, V: Merge> Merge for BTreeMap<K, V> {
    fn absorb(&mut self, other: Self) {
        for (k, v) in other {
            add(self, k, v);
        }
    }
}

/// Adds `v` to what `map` holds under `k`.
fn add<K: Ord, V: Merge>(map: &mut BTreeMap<K, V>, k: K, v: V) {
    match map.entry(k) {
        Entry::Occupied(mut e) => e.get_mut().absorb(v),
        Entry::Vacant(e) => {
            e.insert(v);
        }
    }
}

/// The value the rarest label values are folded into.
pub(crate) const OTHER: &str = "__other__";

/// Sums per value of one vendor-controlled label (branch, department): 100k distinct names must
/// not become 100k series a metric, so `metrics.max_label_values` caps them when the poll ends.
/// Values are ranked by the rows that named them; rows without the label sum under `""` and are
/// never folded.
pub(crate) struct ByLabel<T> {
    named: hashbrown::HashMap<String, (u64, T), RandomState>,
    unnamed: Option<T>,
}

impl<T> Default for ByLabel<T> {
    fn default() -> Self {
        ByLabel {
            named: hashbrown::HashMap::default(),
            unnamed: None,
        }
    }
}

impl<T: Default + Merge> ByLabel<T> {
    /// The sums of `label`'s value, counting one more row for it. Looked up by `&str`: the
    /// value's text is copied only the first time it is seen.
    pub(crate) fn row(&mut self, label: Option<&str>) -> &mut T {
        let Some(label) = label else {
            return self.unnamed.get_or_insert_with(T::default);
        };
        let slot = self.named.entry_ref(label).or_insert_with(Default::default);
        slot.0 += 1;
        &mut slot.1
    }

    /// The sums by value, at most `max` named values keeping their own (those named by the most
    /// rows, ties by name so the choice is stable), the rest merged into [`OTHER`], with a
    /// warning and `awareness_label_values_folded_total{label}`.
    pub(crate) fn finish(
        self,
        key: &SourceKey,
        label: &'static str,
        max: usize,
        stats: &ApiStats,
    ) -> BTreeMap<String, T> {
        let mut ranked: Vec<_> = self.named.into_iter().collect();
        let folded = ranked.len().saturating_sub(max);
        if folded > 0 {
            ranked.sort_unstable_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.0.cmp(&b.0)));
            stats.labels_folded(label, folded as u64);
            tracing::warn!(
                source = %key,
                label,
                folded,
                max_label_values = max,
                "label values beyond metrics.max_label_values folded into {OTHER}"
            );
        }
        let mut out = BTreeMap::new();
        for (i, (name, (_, t))) in ranked.into_iter().enumerate() {
            add(&mut out, if i < max { name } else { OTHER.into() }, t);
        }
        if let Some(t) = self.unnamed {
            add(&mut out, String::new(), t);
        }
        out
    }
}

/// Per-user rows by email, at most `max` of them: those with the smallest emails, as a sort
/// and a cut of every row would keep, without ever holding more than `max`. A row for an
/// email that was cut can never come back (every kept email sorts before it), so the sums of
/// the kept users are complete.
pub(crate) struct UserRows<T> {
    max: usize,
    rows: BTreeMap<Box<str>, T>,
    cut: u64,
}

impl<T: Default> UserRows<T> {
    pub(crate) fn new(max: usize) -> Self {
        UserRows {
            max,
            rows: BTreeMap::new(),
            cut: 0,
        }
    }

    /// The row of `email`, or `None` when it falls beyond the cap.
    pub(crate) fn entry(&mut self, email: &str) -> Option<&mut T> {
        if !self.rows.contains_key(email) {
            if self.rows.len() >= self.max {
                self.cut += 1;
                let last = self.rows.last_key_value().map(|(k, _)| k.clone())?;
                if email >= &*last {
                    return None;
                }
                self.rows.remove(&last);
            }
            self.rows.insert(email.into(), T::default());
        }
        self.rows.get_mut(email)
    }

    /// The kept rows in email order; warns when the cap cut some.
    pub(crate) fn finish(self, key: &SourceKey) -> BTreeMap<Box<str>, T> {
        if self.cut > 0 {
            tracing::warn!(
                source = %key,
                max_users = self.max,
                cut = self.cut,
                "per-user series capped by metrics.max_users"
            );
        }
        self.rows
    }
}

/// The accumulator, even if a fold panicked while holding it (that poll fails anyway: the
/// panic is reported by the decoder and nothing is published).
pub(crate) fn lock<A>(acc: &Mutex<A>) -> MutexGuard<'_, A> {
    acc.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;

    // Only tests count them (here and in the vendors' metrics tests).
    impl<T> ByLabel<T> {
        pub(crate) fn len(&self) -> usize {
            self.named.len()
        }
    }

    impl<T> UserRows<T> {
        pub(crate) fn len(&self) -> usize {
            self.rows.len()
        }
    }

    #[test]
    fn seen_keys_drop_repeats_only() {
        let mut s = SeenKeys::default();
        assert!(s.first_time("a"));
        assert!(s.first_time("b"));
        assert!(!s.first_time("a"));
        assert_eq!(s.len(), 2);
        let mut many = SeenKeys::default();
        let fresh = (0..100_000)
            .filter(|i| many.first_time(&format!("user{i}@example.com")))
            .count();
        assert_eq!(fresh, 100_000, "no collision among 100k distinct ids");
    }

    #[test]
    fn by_label_keeps_the_most_common_values_and_folds_the_rest() {
        let key = SourceKey::new(Platform::new("cyberpilot"), "a");
        let stats = ApiStats::default();
        let mut by: ByLabel<f64> = ByLabel::default();
        for v in ["x", "y", "y", "z", "z", "z", "w"] {
            *by.row(Some(v)) += 1.0;
        }
        *by.row(None) += 10.0;
        let out = by.finish(&key, "branch", 2, &stats);
        let want: BTreeMap<String, f64> = [("", 10.0), ("__other__", 2.0), ("y", 2.0), ("z", 3.0)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(out, want);
        assert_eq!(stats.snapshot().labels_folded.get("branch"), Some(&2));
    }

    #[test]
    fn by_label_keeps_everything_within_the_cap() {
        let key = SourceKey::new(Platform::new("cyberpilot"), "a");
        let stats = ApiStats::default();
        let mut by: ByLabel<[f64; 2]> = ByLabel::default();
        by.row(Some("a"))[0] += 1.0;
        by.row(Some("b"))[1] += 2.0;
        by.row(Some(""))[0] += 3.0;
        by.row(None)[0] += 4.0;
        let out = by.finish(&key, "department", 3, &stats);
        assert_eq!(out.len(), 3);
        assert_eq!(out[""], [7.0, 0.0], "unnamed rows sum with an empty name");
        assert!(stats.snapshot().labels_folded.is_empty());
    }

    #[test]
    fn user_rows_keep_the_smallest_emails_and_complete_sums() {
        let key = SourceKey::new(Platform::new("mimecast"), "a");
        let mut rows: UserRows<f64> = UserRows::new(2);
        for (email, v) in [("d", 1.0), ("b", 1.0), ("c", 1.0), ("b", 1.0), ("a", 1.0)] {
            if let Some(r) = rows.entry(email) {
                *r += v;
            }
        }
        // "d" came back after being cut? It cannot: it sorts after every kept email.
        assert!(rows.entry("d").is_none());
        let kept: Vec<(String, f64)> = rows
            .finish(&key)
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect();
        assert_eq!(kept, vec![("a".into(), 1.0), ("b".into(), 2.0)]);
        let mut none: UserRows<f64> = UserRows::new(0);
        assert!(none.entry("a").is_none());
    }

    #[test]
    fn merge_of_options_and_maps() {
        let mut a: Option<[f64; 2]> = None;
        a.absorb(Some([1.0, 2.0]));
        a.absorb(None);
        a.absorb(Some([1.0, 1.0]));
        assert_eq!(a, Some([2.0, 3.0]));
        let mut m: BTreeMap<&str, f64> = [("x", 1.0)].into_iter().collect();
        m.absorb([("x", 1.0), ("y", 5.0)].into_iter().collect());
        assert_eq!(m, [("x", 2.0), ("y", 5.0)].into_iter().collect());
    }
}
