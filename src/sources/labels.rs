//! Caps on vendor-controlled label values (`metrics.max_label_values`): branch and department
//! names come from the vendor, and 100k distinct names would otherwise be 100k series per
//! metric. The values with the most rows keep their own series; the rest are folded into
//! [`OTHER`], with a warning and `awareness_label_values_folded_total`.

use std::collections::HashMap;

use crate::model::SourceKey;
use crate::stats::ApiStats;

/// The value the rarest label values are folded into.
pub const OTHER: &str = "__other__";

/// Keeps at most `max` distinct values among `values` (those with the most rows; ties by name,
/// so the choice is stable) and renames the rest to [`OTHER`]. Returns how many distinct values
/// were folded.
pub fn fold_rare(
    key: &SourceKey,
    label: &'static str,
    mut values: Vec<&mut String>,
    max: usize,
    stats: &ApiStats,
) -> usize {
    let mut counts: HashMap<&str, u64> = HashMap::new();
    for v in &values {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    if counts.len() <= max {
        return 0;
    }
    let mut ranked: Vec<(&str, u64)> = counts.into_iter().collect();
    ranked.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let folded = ranked.len() - max;
    let keep: std::collections::HashSet<String> =
        ranked[..max].iter().map(|(v, _)| v.to_string()).collect();
    for v in values.iter_mut() {
        if !keep.contains(v.as_str()) {
            **v = OTHER.to_string();
        }
    }
    stats.labels_folded(label, folded as u64);
    tracing::warn!(
        source = %key,
        label,
        folded,
        max_label_values = max,
        "label values beyond metrics.max_label_values folded into {OTHER}"
    );
    folded
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;

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
