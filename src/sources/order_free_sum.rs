//! A sum of fractional values that does not depend on the order they were added in.
//!
//! Pages are folded into aggregates as they arrive, and with concurrent requests the arrival
//! order changes from poll to poll. f64 addition is not associative, so a plain running sum
//! makes an average flicker in its last digits from poll to poll (and made the golden body
//! differ between runs). Each value is rounded to a multiple of 1e-9 (far below any score or
//! percentage a vendor sends) and summed as an integer, which is exact and associative: the
//! same rows give the same bytes whatever order they came in. A decimal scale keeps the
//! means decimal: 678.6 over 10 users is 67.86, not 67.86000000000931.

/// Units per 1.0.
const SCALE: f64 = 1e9;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OrderFreeSum {
    units: i128,
}

impl OrderFreeSum {
    /// Adds `value`; a value that is not finite is ignored (parsing never yields one, but a
    /// NaN must not poison the sum).
    pub(crate) fn add(&mut self, value: f64) {
        if value.is_finite() {
            // `as` saturates for values beyond i128; the sum saturates too: no panic, no wrap.
            self.units = self.units.saturating_add((value * SCALE).round() as i128);
        }
    }

    pub(crate) fn absorb(&mut self, other: OrderFreeSum) {
        self.units = self.units.saturating_add(other.units);
    }

    /// The sum divided by `count`, rounded once: an integer over an integer, exact below
    /// 2^53 units and 9 million values.
    pub(crate) fn mean(self, count: f64) -> f64 {
        self.units as f64 / (count * SCALE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl OrderFreeSum {
        fn value(self) -> f64 {
            self.units as f64 / SCALE
        }
    }

    #[test]
    fn the_order_of_the_values_does_not_change_the_sum() {
        let values: Vec<f64> = (0..1000).map(|i| (i as f64 * 7.31).sin() * 100.0).collect();
        let mut forward = OrderFreeSum::default();
        values.iter().for_each(|v| forward.add(*v));
        let mut backward = OrderFreeSum::default();
        values.iter().rev().for_each(|v| backward.add(*v));
        // Split in two halves merged the other way round, as two pages arriving swapped.
        let (a, b) = values.split_at(377);
        let (mut first, mut second) = (OrderFreeSum::default(), OrderFreeSum::default());
        b.iter().for_each(|v| first.add(*v));
        a.iter().for_each(|v| second.add(*v));
        first.absorb(second);
        assert_eq!(forward, backward);
        assert_eq!(forward, first);
        let plain: f64 = values.iter().sum();
        assert!((forward.value() - plain).abs() < 1e-6);
    }

    #[test]
    fn odd_values_neither_panic_nor_poison() {
        let mut s = OrderFreeSum::default();
        s.add(f64::NAN);
        s.add(f64::INFINITY);
        s.add(f64::MAX);
        s.add(f64::MAX);
        s.add(-0.0);
        assert!(s.value().is_finite());
        let mut t = OrderFreeSum::default();
        t.add(67.5);
        t.add(0.25);
        assert_eq!(t.value(), 67.75);
        let mut u = OrderFreeSum::default();
        [67.9, 67.8, 67.88].iter().for_each(|v| u.add(*v));
        assert_eq!(u.mean(3.0), 67.86);
    }
}
