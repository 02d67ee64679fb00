//! Sharding accounts over replicas, as kube-state-metrics shards objects: every replica reads
//! the same config, and each polls only the accounts that hash to its shard
//! (`--shard` / `--total-shards`, or the ordinal of a StatefulSet pod: `--pod` or
//! `--shard.from-hostname`). Prometheus scrapes every replica; the union of their series is
//! what one process would have exported, with no account polled twice.
//!
//! The assignment is a pure function of (platform, account name) and the number of shards: no
//! coordination, no state, the same on every replica and every version (pinned by
//! `assignments_are_stable`). Jump consistent hashing (Lamping and Veach, 2014) over FNV-1a:
//! going from n to n+1 shards moves only about 1/(n+1) of the accounts, where `hash % n` would
//! move most of them.

use crate::model::SourceKey;

/// This replica's shard: `ordinal` in `0..total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    ordinal: u32,
    total: u32,
}

impl Shard {
    /// Not sharded: one replica polls every account.
    pub const ALL: Shard = Shard {
        ordinal: 0,
        total: 1,
    };

    /// Shard `ordinal` of `total`; an error names what is wrong.
    pub fn new(ordinal: u32, total: u32) -> Result<Shard, String> {
        if total == 0 {
            return Err("--total-shards must be at least 1".into());
        }
        if ordinal >= total {
            return Err(format!(
                "shard {ordinal} does not exist with --total-shards {total} (shards are numbered \
                 from 0 to {})",
                total - 1
            ));
        }
        Ok(Shard { ordinal, total })
    }

    /// The shard of a StatefulSet pod, from its name (`awareness-exporter-2` is shard 2), as
    /// kube-state-metrics reads it from `--pod`. The pod name is also the pod's hostname.
    pub fn from_pod_name(name: &str, total: u32) -> Result<Shard, String> {
        let name = name.trim();
        let ordinal = name
            .rsplit_once('-')
            .map(|(_, n)| n)
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit())) // no sign
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| {
                format!(
                    "cannot read a StatefulSet ordinal from the pod name `{name}`: expected \
                     `<statefulset>-<ordinal>`, such as `awareness-exporter-0`"
                )
            })?;
        Shard::new(ordinal, total)
    }

    pub fn ordinal(self) -> u32 {
        self.ordinal
    }

    pub fn total(self) -> u32 {
        self.total
    }

    /// True when there is more than one shard.
    pub fn is_sharded(self) -> bool {
        self.total > 1
    }

    /// The shard that polls `key` when there are `total` shards.
    pub fn of(key: &SourceKey, total: u32) -> u32 {
        jump_hash(account_hash(key), total.max(1))
    }

    /// True when this shard polls `key`.
    pub fn owns(self, key: &SourceKey) -> bool {
        Shard::of(key, self.total) == self.ordinal
    }
}

/// FNV-1a (64 bits) over `platform`, a 0 byte and `account`: stable across processes,
/// machines and Rust versions (std's hashers are not).
fn account_hash(key: &SourceKey) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let bytes = key
        .platform
        .as_str()
        .bytes()
        .chain(std::iter::once(0))
        .chain(key.account.bytes());
    bytes.fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// Jump consistent hash: a bucket in `0..buckets` for `key`.
fn jump_hash(mut key: u64, buckets: u32) -> u32 {
    let (mut b, mut j) = (-1i64, 0i64);
    while j < i64::from(buckets) {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    b as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Platform;

    fn key(platform: &'static str, account: &str) -> SourceKey {
        SourceKey::new(Platform::new(platform), account)
    }

    #[test]
    fn every_account_has_exactly_one_shard() {
        for total in 1..=7u32 {
            let shards: Vec<Shard> = (0..total).map(|i| Shard::new(i, total).unwrap()).collect();
            for i in 0..500 {
                let k = key(["cyberpilot", "mimecast"][i % 2], &format!("account-{i}"));
                let owners = shards.iter().filter(|s| s.owns(&k)).count();
                assert_eq!(owners, 1, "{k} with {total} shards");
            }
        }
        assert!(Shard::ALL.owns(&key("mimecast", "anything")));
    }

    #[test]
    fn accounts_spread_over_the_shards() {
        let mut counts = [0u32; 4];
        for i in 0..4_000 {
            counts[Shard::of(&key("cyberpilot", &format!("tenant{i}")), 4) as usize] += 1;
        }
        for c in counts {
            assert!((800..1_200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn the_platform_is_part_of_the_identity() {
        let differ = (0..100)
            .filter(|i| {
                let a = format!("acct{i}");
                Shard::of(&key("cyberpilot", &a), 8) != Shard::of(&key("mimecast", &a), 8)
            })
            .count();
        assert!(differ > 50, "{differ}");
    }

    /// Replicas of different versions must agree: these values may never change (computed
    /// independently with a Python FNV-1a and jump hash).
    #[test]
    fn assignments_are_stable() {
        assert_eq!(
            account_hash(&key("cyberpilot", "acme")),
            0x06cc_4e6d_65d9_ab86
        );
        let got: Vec<u32> = ["acme", "globex", "initech", "umbrella", "hooli", "stark"]
            .iter()
            .map(|a| Shard::of(&key("mimecast", a), 3))
            .collect();
        assert_eq!(got, vec![1, 0, 2, 1, 2, 0]);
    }

    #[test]
    fn adding_a_shard_moves_few_accounts() {
        let moved = (0..10_000)
            .filter(|i| {
                let k = key("cyberpilot", &format!("t{i}"));
                Shard::of(&k, 4) != Shard::of(&k, 5)
            })
            .count();
        // Jump hashing moves ~1/5 of them; `% n` would move ~4/5.
        assert!((1_500..2_500).contains(&moved), "{moved}");
    }

    #[test]
    fn flags_and_pod_names() {
        assert_eq!(Shard::new(2, 3).unwrap().ordinal(), 2);
        assert!(Shard::new(3, 3)
            .unwrap_err()
            .contains("numbered from 0 to 2"));
        assert!(Shard::new(0, 0).is_err());
        assert_eq!(
            Shard::from_pod_name("awareness-exporter-2", 3).unwrap(),
            Shard::new(2, 3).unwrap()
        );
        assert_eq!(
            Shard::from_pod_name(" x-0\n", 1).unwrap(),
            Shard::ALL,
            "a hostname read from a file"
        );
        for bad in ["awareness-exporter", "exporter-", "exporter-x1", "7"] {
            assert!(Shard::from_pod_name(bad, 3).is_err(), "{bad}");
        }
        assert!(Shard::from_pod_name("e-5", 3)
            .unwrap_err()
            .contains("0 to 2"));
    }
}
