//! Caps on vendor-controlled label values (`metrics.max_label_values`): branch and department
//! names come from the vendor, and 100k distinct names would otherwise be 100k series per
//! metric. The values with the most rows keep their own series; the rest are folded into
//! [`OTHER`], with a warning and `awareness_label_values_folded_total`.

use std::collections::HashSet;

use crate::model::SourceKey;
use crate::stats::ApiStats;

/// The value the rarest label values are folded into.
pub(crate) const OTHER: &str = "__other__";

/// The values of `label` that keep their own series when `weights` (rows or sums, one entry
/// a distinct value) hold more than `max`: the `max` heaviest, ties by name so the choice is
/// stable; the fold is counted and warned. `None` when every value fits.
pub(crate) fn keep_most<'a>(
    key: &SourceKey,
    label: &'static str,
    weights: impl IntoIterator<Item = (&'a str, f64)>,
    max: usize,
    stats: &ApiStats,
) -> Option<HashSet<String>> {
    let mut ranked: Vec<(&str, f64)> = weights.into_iter().collect();
    if ranked.len() <= max {
        return None;
    }
    ranked.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    let folded = ranked.len() - max;
    stats.labels_folded(label, folded as u64);
    tracing::warn!(
        source = %key,
        label,
        folded,
        max_label_values = max,
        "label values beyond metrics.max_label_values folded into {OTHER}"
    );
    Some(ranked[..max].iter().map(|(v, _)| v.to_string()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;
    use std::collections::HashMap;

    /// Keeps at most `max` distinct values among `values` (those with the most rows, as
    /// [`keep_most`] ranks them) and renames the rest to [`OTHER`]. Returns how many distinct
    /// values were folded.
    fn fold_rare(
        key: &SourceKey,
        label: &'static str,
        mut values: Vec<&mut String>,
        max: usize,
        stats: &ApiStats,
    ) -> usize {
        let mut rows: HashMap<&str, f64> = HashMap::new();
        for v in &values {
            *rows.entry(v.as_str()).or_default() += 1.0;
        }
        let distinct = rows.len();
        let Some(keep) = keep_most(key, label, rows, max, stats) else {
            return 0;
        };
        for v in values.iter_mut().filter(|v| !keep.contains(v.as_str())) {
            **v = OTHER.to_string();
        }
        distinct - max
    }

    #[test]
    fn the_most_common_values_stay_and_the_rest_fold() {
        let key = SourceKey::new(Platform::new("cyberpilot"), "a");
        let stats = ApiStats::default();
        let mut v: Vec<String> = ["x", "y", "y", "z", "z", "z", "w"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            fold_rare(&key, "branch", v.iter_mut().collect(), 2, &stats),
            2
        );
        assert_eq!(v, ["__other__", "y", "y", "z", "z", "z", "__other__"]);
        assert_eq!(stats.snapshot().labels_folded.get("branch"), Some(&2));
        assert_eq!(
            fold_rare(&key, "branch", v.iter_mut().collect(), 3, &stats),
            0
        );
    }
}
