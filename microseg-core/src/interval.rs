//! Sorted, disjoint, merged sets of inclusive integer intervals.
//!
//! ```
//! use microseg_core::interval::IntervalSet;
//! let mut s = IntervalSet::<u16>::new();
//! s.insert(80, 80);
//! s.insert(81, 90);
//! s.insert(443, 443);
//! assert_eq!(s.ranges(), &[(80, 90), (443, 443)]);
//! assert!(s.contains(85));
//! assert!(!s.contains(100));
//! ```
//!
//! Every address group, every endpoint and every port list of a policy is
//! normalised to these sets; the semantics, the IR and the exact diff all
//! work on them.

use serde::{Deserialize, Serialize};
use std::fmt::Debug;

/// An integer type usable as interval bound (`u16` ports, `u32` IPv4, `u128` IPv6).
pub trait Bound: Copy + Ord + Debug + Default + Send + Sync + 'static {
    /// The largest value.
    const MAX: Self;
    /// The smallest value.
    const MIN: Self;
    /// `self + 1`, or `None` at the maximum.
    fn succ(self) -> Option<Self>;
    /// `self - 1`, or `None` at the minimum.
    fn pred(self) -> Option<Self>;
}

macro_rules! bound {
    ($t:ty) => {
        impl Bound for $t {
            const MAX: Self = <$t>::MAX;
            const MIN: Self = <$t>::MIN;
            fn succ(self) -> Option<Self> {
                self.checked_add(1)
            }
            fn pred(self) -> Option<Self> {
                self.checked_sub(1)
            }
        }
    };
}
bound!(u16);
bound!(u32);
bound!(u128);

/// A set of values stored as sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize, PartialOrd, Ord)]
pub struct IntervalSet<T: Bound> {
    ranges: Vec<(T, T)>,
}

impl<T: Bound> Debug for IntervalSet<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.ranges.iter()).finish()
    }
}

impl<T: Bound> IntervalSet<T> {
    /// The empty set.
    pub fn new() -> Self {
        IntervalSet { ranges: Vec::new() }
    }

    /// The set of all values of `T`.
    pub fn full() -> Self {
        IntervalSet {
            ranges: vec![(T::MIN, T::MAX)],
        }
    }

    /// A set of one interval `lo..=hi` (empty if `lo > hi`).
    pub fn range(lo: T, hi: T) -> Self {
        let mut s = Self::new();
        s.insert(lo, hi);
        s
    }

    /// Builds a set from arbitrary (possibly overlapping, unsorted) intervals.
    pub fn from_ranges(ranges: impl IntoIterator<Item = (T, T)>) -> Self {
        let mut v: Vec<(T, T)> = ranges.into_iter().filter(|(a, b)| a <= b).collect();
        v.sort_unstable();
        let mut out: Vec<(T, T)> = Vec::with_capacity(v.len());
        for (lo, hi) in v {
            if let Some(last) = out.last_mut() {
                let adjacent = last.1.succ().is_none_or(|n| lo <= n);
                if adjacent {
                    if hi > last.1 {
                        last.1 = hi;
                    }
                    continue;
                }
            }
            out.push((lo, hi));
        }
        IntervalSet { ranges: out }
    }

    /// The intervals, sorted, disjoint and not adjacent.
    pub fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// True if the set has no element.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// True if the set holds every value of `T`.
    pub fn is_full(&self) -> bool {
        self.ranges.len() == 1 && self.ranges[0] == (T::MIN, T::MAX)
    }

    /// Adds `lo..=hi` (in place: `O(log n)` to find it, plus the ranges it
    /// merges with and the shift of those after it; appending past the
    /// end, as sorted input does, is `O(1)`).
    pub fn insert(&mut self, lo: T, hi: T) {
        if lo > hi {
            return;
        }
        // Fast path: strictly after the last range and not adjacent to it.
        match self.ranges.last() {
            None => {
                self.ranges.push((lo, hi));
                return;
            }
            Some(&(_, last_hi)) if last_hi.succ().is_some_and(|n| n < lo) => {
                self.ranges.push((lo, hi));
                return;
            }
            _ => {}
        }
        // The first range that ends at or after lo - 1 (may touch or overlap).
        let start = self
            .ranges
            .partition_point(|&(_, h)| h.succ().is_some_and(|n| n < lo));
        // Ranges from `start` that begin at or before hi + 1 merge with it.
        let mut end = start;
        let (mut new_lo, mut new_hi) = (lo, hi);
        while let Some(&(l, h)) = self.ranges.get(end) {
            let touches = hi.succ().is_none_or(|n| l <= n);
            if !touches {
                break;
            }
            new_lo = new_lo.min(l);
            new_hi = new_hi.max(h);
            end += 1;
        }
        self.ranges
            .splice(start..end, std::iter::once((new_lo, new_hi)));
    }

    /// True if `x` is in the set (binary search).
    pub fn contains(&self, x: T) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi < x);
        i < self.ranges.len() && self.ranges[i].0 <= x
    }

    /// The union of two sets (one linear merge of the sorted ranges).
    pub fn union(&self, other: &Self) -> Self {
        if other.ranges.is_empty() {
            return self.clone();
        }
        if self.ranges.is_empty() {
            return other.clone();
        }
        let (a, b) = (&self.ranges, &other.ranges);
        let mut out: Vec<(T, T)> = Vec::with_capacity(a.len() + b.len());
        let (mut i, mut j) = (0, 0);
        while i < a.len() || j < b.len() {
            let next = if j == b.len() || (i < a.len() && a[i] <= b[j]) {
                i += 1;
                a[i - 1]
            } else {
                j += 1;
                b[j - 1]
            };
            match out.last_mut() {
                Some(last) if last.1.succ().is_none_or(|n| next.0 <= n) => {
                    if next.1 > last.1 {
                        last.1 = next.1;
                    }
                }
                _ => out.push(next),
            }
        }
        IntervalSet { ranges: out }
    }

    /// The intersection of two sets.
    pub fn intersect(&self, other: &Self) -> Self {
        let (a, b) = (&self.ranges, &other.ranges);
        let (mut i, mut j) = (0, 0);
        let mut out = Vec::new();
        while i < a.len() && j < b.len() {
            let lo = a[i].0.max(b[j].0);
            let hi = a[i].1.min(b[j].1);
            if lo <= hi {
                out.push((lo, hi));
            }
            if a[i].1 < b[j].1 {
                i += 1;
            } else {
                j += 1;
            }
        }
        IntervalSet { ranges: out }
    }

    /// The values of `self` not in `other`.
    pub fn difference(&self, other: &Self) -> Self {
        self.intersect(&other.complement())
    }

    /// All values of `T` not in the set.
    pub fn complement(&self) -> Self {
        let mut out = Vec::with_capacity(self.ranges.len() + 1);
        let mut next = Some(T::MIN);
        for &(lo, hi) in &self.ranges {
            if let Some(n) = next {
                if n < lo {
                    out.push((n, lo.pred().expect("lo > n >= MIN")));
                }
            }
            next = hi.succ();
        }
        if let Some(n) = next {
            out.push((n, T::MAX));
        }
        IntervalSet { ranges: out }
    }

    /// True if every element of `self` is in `other` (no allocation;
    /// each range of `self` must lie in one range of `other`, found by
    /// exponential search from the previous one: `O(n log(m / n))`, and
    /// `O(1)` when the spans already tell).
    pub fn is_subset(&self, other: &Self) -> bool {
        let (a, b) = (&self.ranges, &other.ranges);
        let (Some(af), Some(al)) = (a.first(), a.last()) else {
            return true;
        };
        match (b.first(), b.last()) {
            (Some(bf), Some(bl)) if bf.0 <= af.0 && al.1 <= bl.1 => {}
            _ => return false,
        }
        let mut j = 0;
        for &(lo, hi) in a {
            j += gallop(&b[j..], |&(_, h)| h < lo);
            match b.get(j) {
                Some(&(l, h)) if l <= lo && hi <= h => {}
                _ => return false,
            }
        }
        true
    }

    /// True if the sets share an element (no allocation; `O(1)` when their
    /// spans are apart; otherwise a zipper that skips, by exponential search
    /// on either side, every run of ranges lying wholly before the other
    /// side's current range: `O(k log g)` for `k` alternations skipping
    /// runs of up to `g` ranges).
    pub fn intersects(&self, other: &Self) -> bool {
        let (a, b) = (&self.ranges, &other.ranges);
        match (a.first(), a.last(), b.first(), b.last()) {
            (Some(af), Some(al), Some(bf), Some(bl)) if al.1 >= bf.0 && bl.1 >= af.0 => {}
            _ => return false,
        }
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            if a[i].1 < b[j].0 {
                let lo = b[j].0;
                i += gallop(&a[i..], |&(_, h)| h < lo);
            } else if b[j].1 < a[i].0 {
                let lo = a[i].0;
                j += gallop(&b[j..], |&(_, h)| h < lo);
            } else {
                return true;
            }
        }
        false
    }

    /// The smallest element, if any.
    pub fn first(&self) -> Option<T> {
        self.ranges.first().map(|r| r.0)
    }
}

/// The number of leading elements of `s` that satisfy `pred` (which holds
/// for a prefix of `s` and for nothing after it), by exponential then
/// binary search: `O(log k)` for an answer `k`, where
/// [`slice::partition_point`] costs `O(log n)` whatever the answer.
fn gallop<X>(s: &[X], pred: impl Fn(&X) -> bool) -> usize {
    // Invariant: `pred` holds on `s[..lo]`.
    let mut lo = 0;
    let mut step = 1;
    while lo + step <= s.len() && pred(&s[lo + step - 1]) {
        lo += step;
        step *= 2;
    }
    // `s[lo + step - 1]` fails `pred`, or lies past the end.
    let end = (lo + step - 1).min(s.len());
    lo + s[lo..end].partition_point(pred)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gallop_is_partition_point() {
        for n in 0..70usize {
            let v: Vec<usize> = (0..n).collect();
            for k in 0..=n {
                assert_eq!(gallop(&v, |&x| x < k), k, "n={n} k={k}");
            }
        }
    }

    /// The zipper and the exponential searches against a plain
    /// element-by-element definition, on small random sets.
    #[test]
    fn subset_and_intersects_match_their_definition() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut set = |n: u64| {
            let k = next() % 12;
            IntervalSet::<u16>::from_ranges((0..k).map(|_| {
                let lo = (next() % n) as u16;
                (lo, lo + (next() % 6) as u16)
            }))
        };
        for round in 0..4000 {
            let n = [16, 64, 300][round % 3];
            let (a, b) = (set(n), set(n));
            let elems = |s: &IntervalSet<u16>| -> Vec<u16> {
                s.ranges().iter().flat_map(|&(l, h)| l..=h).collect()
            };
            let (ea, eb) = (elems(&a), elems(&b));
            assert_eq!(
                a.is_subset(&b),
                ea.iter().all(|x| b.contains(*x)),
                "{a:?} {b:?}"
            );
            assert_eq!(
                a.intersects(&b),
                ea.iter().any(|x| b.contains(*x)),
                "{a:?} {b:?}"
            );
            assert_eq!(
                b.intersects(&a),
                eb.iter().any(|x| a.contains(*x)),
                "{a:?} {b:?}"
            );
            let u = a.union(&b);
            assert!(a.is_subset(&u) && b.is_subset(&u));
            assert!(a.intersect(&b).is_subset(&a));
        }
    }

    #[test]
    fn merge_adjacent_and_overlapping() {
        let s = IntervalSet::<u16>::from_ranges([(5, 9), (1, 3), (4, 4), (20, 30), (25, 40)]);
        assert_eq!(s.ranges(), &[(1, 9), (20, 40)]);
    }

    #[test]
    fn complement_edges() {
        let s = IntervalSet::<u16>::from_ranges([(0, 3), (65535, 65535)]);
        assert_eq!(s.complement().ranges(), &[(4, 65534)]);
        assert!(IntervalSet::<u16>::full().complement().is_empty());
        assert!(IntervalSet::<u16>::new().complement().is_full());
    }

    #[test]
    fn set_algebra() {
        let a = IntervalSet::<u32>::from_ranges([(1, 10), (20, 30)]);
        let b = IntervalSet::<u32>::from_ranges([(5, 25)]);
        assert_eq!(a.intersect(&b).ranges(), &[(5, 10), (20, 25)]);
        assert_eq!(a.difference(&b).ranges(), &[(1, 4), (26, 30)]);
        assert_eq!(a.union(&b).ranges(), &[(1, 30)]);
        assert!(IntervalSet::range(6, 9).is_subset(&a));
        assert!(!b.is_subset(&a));
        assert!(a.contains(30) && !a.contains(31) && !a.contains(0));
    }

    #[test]
    fn u128_max() {
        let s = IntervalSet::<u128>::from_ranges([(u128::MAX - 1, u128::MAX), (0, 0)]);
        assert_eq!(s.complement().ranges(), &[(1, u128::MAX - 2)]);
    }
}
