//! Set members of a ruleset, as a backend names its sets, and the compact
//! file they are recorded in: what lets an apply whose policy changed only
//! members plan the element delta from the IR, without rendering it or
//! reading anything but the members of the last apply.
//!
//! ```
//! use microseg_host::members::{self, Members};
//! use std::borrow::Cow;
//! let sets = vec![
//!     (Cow::Borrowed("web_v4"), Members::V4(Cow::Owned(vec![(1, 1), (5, 9)]))),
//!     (Cow::Borrowed("web_v6"), Members::V6(Cow::Owned(vec![]))),
//! ];
//! let bytes = members::encode(&sets);
//! assert_eq!(members::decode(&bytes).unwrap(), sets);
//! // What changes from (1, 1), (5, 9) to (1, 1), (5, 10):
//! let d = members::delta(&sets[0].1, &Members::V4(Cow::Owned(vec![(1, 1), (5, 10)]))).unwrap();
//! assert_eq!(d, (Members::V4(Cow::Owned(vec![(5, 10)])), Members::V4(Cow::Owned(vec![(5, 9)]))));
//! ```

use std::borrow::Cow;

/// The members of one set: sorted, disjoint, inclusive intervals of
/// addresses of one family; or the elements of one map: such intervals,
/// each with a number the backend gives meaning to (the nft backend: the
/// digest that names the chain an element of a verdict map jumps to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Members<'a> {
    /// IPv4 addresses.
    V4(Cow<'a, [(u32, u32)]>),
    /// IPv6 addresses.
    V6(Cow<'a, [(u128, u128)]>),
    /// IPv4 addresses, each interval mapped to a number.
    MapV4(Cow<'a, [(u32, u32, u64)]>),
    /// IPv6 addresses, each interval mapped to a number.
    MapV6(Cow<'a, [(u128, u128, u64)]>),
}

impl Members<'_> {
    /// How many intervals.
    ///
    /// ```
    /// # use std::borrow::Cow;
    /// assert_eq!(microseg_host::members::Members::V4(Cow::Owned(vec![(1, 2)])).len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        match self {
            Members::V4(r) => r.len(),
            Members::V6(r) => r.len(),
            Members::MapV4(r) => r.len(),
            Members::MapV6(r) => r.len(),
        }
    }

    /// Whether there are none.
    ///
    /// ```
    /// # use std::borrow::Cow;
    /// assert!(microseg_host::members::Members::V6(Cow::Owned(vec![])).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Named sets with their members, in the backend's order.
pub type NamedMembers<'a> = Vec<(Cow<'a, str>, Members<'a>)>;

/// What a backend installs for a ruleset, set members apart: a digest of
/// everything else, and the members of each of its sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSets<'a> {
    /// Equal for two rulesets exactly when the backend installs the same
    /// for both but set members.
    pub structure: String,
    /// The sets, by name, and their members.
    pub sets: NamedMembers<'a>,
}

/// The element changes of one set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDelta {
    /// The set.
    pub set: String,
    /// Intervals to add.
    pub add: Members<'static>,
    /// Intervals to delete.
    pub delete: Members<'static>,
}

/// `(added, deleted)` from `old` to `new`, interval for interval (a
/// widened interval is deleted and added again, as a set holds it);
/// `None` when the families (or kinds) differ.
pub fn delta(old: &Members, new: &Members) -> Option<(Members<'static>, Members<'static>)> {
    /// Elements in the new list only, and in the old only.
    type Diff<T> = (Vec<T>, Vec<T>);
    fn diff<T: Ord + Copy>(old: &[T], new: &[T]) -> Diff<T> {
        let (mut add, mut delete) = (Vec::new(), Vec::new());
        let (mut i, mut j) = (0, 0);
        while i < old.len() || j < new.len() {
            match (old.get(i), new.get(j)) {
                (Some(a), Some(b)) if a == b => {
                    i += 1;
                    j += 1;
                }
                (Some(a), Some(b)) if a < b => {
                    delete.push(*a);
                    i += 1;
                }
                (Some(a), None) => {
                    delete.push(*a);
                    i += 1;
                }
                (_, Some(b)) => {
                    add.push(*b);
                    j += 1;
                }
                (None, None) => break,
            }
        }
        (add, delete)
    }
    Some(match (old, new) {
        (Members::V4(o), Members::V4(n)) => {
            let (a, d) = diff(o, n);
            (Members::V4(Cow::Owned(a)), Members::V4(Cow::Owned(d)))
        }
        (Members::V6(o), Members::V6(n)) => {
            let (a, d) = diff(o, n);
            (Members::V6(Cow::Owned(a)), Members::V6(Cow::Owned(d)))
        }
        (Members::MapV4(o), Members::MapV4(n)) => {
            let (a, d) = diff(o, n);
            (Members::MapV4(Cow::Owned(a)), Members::MapV4(Cow::Owned(d)))
        }
        (Members::MapV6(o), Members::MapV6(n)) => {
            let (a, d) = diff(o, n);
            (Members::MapV6(Cow::Owned(a)), Members::MapV6(Cow::Owned(d)))
        }
        _ => return None,
    })
}

/// The element changes from `old` to `new`, set by set (sets with none
/// left out); `None` when the two do not name the same sets in the same
/// order with members of the same kinds.
pub fn deltas(old: &NamedMembers, new: &NamedMembers) -> Option<Vec<MemberDelta>> {
    if old.len() != new.len() {
        return None;
    }
    let mut out = Vec::new();
    for ((old_name, old_members), (new_name, new_members)) in old.iter().zip(new) {
        if old_name != new_name {
            return None;
        }
        let (add, delete) = delta(old_members, new_members)?;
        if !add.is_empty() || !delete.is_empty() {
            out.push(MemberDelta {
                set: new_name.to_string(),
                add,
                delete,
            });
        }
    }
    Some(out)
}

/// The first bytes of a members file.
const MAGIC: &[u8] = b"microseg-members/1\n";

/// The members file for `sets`: a header, then per set its name, kind
/// (4, 6; a map: 14, 16) and intervals as little-endian integers, a map's
/// with their number (a few bytes per member where JSON takes tens, and
/// read back without parsing text).
pub fn encode(sets: &[(Cow<str>, Members)]) -> Vec<u8> {
    let size: usize = sets
        .iter()
        .map(|(n, m)| {
            n.len()
                + 16
                + match m {
                    Members::V4(r) => r.len() * 8,
                    Members::V6(r) => r.len() * 32,
                    Members::MapV4(r) => r.len() * 16,
                    Members::MapV6(r) => r.len() * 40,
                }
        })
        .sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 8 + size);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(sets.len() as u64).to_le_bytes());
    for (name, m) in sets {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        /// Family, count, then each interval's ends.
        fn put<T: Copy>(out: &mut Vec<u8>, family: u8, r: &[(T, T)], le: impl Fn(&mut Vec<u8>, T)) {
            out.push(family);
            out.extend_from_slice(&(r.len() as u64).to_le_bytes());
            for &(a, b) in r {
                le(out, a);
                le(out, b);
            }
        }
        /// Kind, count, then each interval's ends and number.
        fn put_map<T: Copy>(
            out: &mut Vec<u8>,
            kind: u8,
            r: &[(T, T, u64)],
            le: impl Fn(&mut Vec<u8>, T),
        ) {
            out.push(kind);
            out.extend_from_slice(&(r.len() as u64).to_le_bytes());
            for &(a, b, n) in r {
                le(out, a);
                le(out, b);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        match m {
            Members::V4(r) => put(&mut out, 4, r, |o, x| o.extend_from_slice(&x.to_le_bytes())),
            Members::V6(r) => put(&mut out, 6, r, |o, x| o.extend_from_slice(&x.to_le_bytes())),
            Members::MapV4(r) => put_map(&mut out, 14, r, |o, x| {
                o.extend_from_slice(&x.to_le_bytes())
            }),
            Members::MapV6(r) => put_map(&mut out, 16, r, |o, x| {
                o.extend_from_slice(&x.to_le_bytes())
            }),
        }
    }
    out
}

/// The sets of a members file ([`encode`]); `Err` says what is wrong.
pub fn decode(bytes: &[u8]) -> Result<NamedMembers<'static>, String> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(MAGIC.len())? != MAGIC {
        return Err("not a microseg members file".into());
    }
    let count = r.u64()?;
    let mut out = Vec::new();
    for _ in 0..count {
        let len = u32::from_le_bytes(r.array()?) as usize;
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| "a set name is not UTF-8".to_string())?
            .to_string();
        let family = r.take(1)?[0];
        let n = usize::try_from(r.u64()?).map_err(|_| "too many members".to_string())?;
        /// `n` intervals of ends `width` bytes wide.
        fn take<T>(
            r: &mut Reader,
            n: usize,
            width: usize,
            end: impl Fn(&[u8]) -> T,
        ) -> Result<Vec<(T, T)>, String> {
            let size = n.checked_mul(2 * width).ok_or("too many members")?;
            Ok(r.take(size)?
                .chunks_exact(2 * width)
                .map(|c| (end(&c[..width]), end(&c[width..])))
                .collect())
        }
        /// `n` intervals of ends `width` bytes wide, each with a number.
        fn take_map<T>(
            r: &mut Reader,
            n: usize,
            width: usize,
            end: impl Fn(&[u8]) -> T,
        ) -> Result<Vec<(T, T, u64)>, String> {
            let size = n.checked_mul(2 * width + 8).ok_or("too many members")?;
            Ok(r.take(size)?
                .chunks_exact(2 * width + 8)
                .map(|c| {
                    let mut k = [0; 8];
                    k.copy_from_slice(&c[2 * width..]);
                    (
                        end(&c[..width]),
                        end(&c[width..2 * width]),
                        u64::from_le_bytes(k),
                    )
                })
                .collect())
        }
        let members = match family {
            4 => Members::V4(Cow::Owned(take(&mut r, n, 4, le32)?)),
            6 => Members::V6(Cow::Owned(take(&mut r, n, 16, le128)?)),
            14 => Members::MapV4(Cow::Owned(take_map(&mut r, n, 4, le32)?)),
            16 => Members::MapV6(Cow::Owned(take_map(&mut r, n, 16, le128)?)),
            f => return Err(format!("set {name}: unknown kind {f}")),
        };
        out.push((Cow::Owned(name), members));
    }
    if r.at != bytes.len() {
        return Err("trailing bytes".into());
    }
    Ok(out)
}

fn le32(b: &[u8]) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

fn le128(b: &[u8]) -> u128 {
    let mut a = [0; 16];
    a.copy_from_slice(b);
    u128::from_le_bytes(a)
}

/// Bytes read front to back, every read bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or("the file ends early")?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_refuses_what_encode_does_not_write() {
        let sets = vec![
            (
                Cow::Borrowed("s_v6"),
                Members::V6(Cow::Owned(vec![(0, 0), (7, u128::MAX)])),
            ),
            (
                Cow::Borrowed("in4_range"),
                Members::MapV4(Cow::Owned(vec![(1, 9, u64::MAX), (11, u32::MAX, 7)])),
            ),
            (
                Cow::Borrowed("in6_single"),
                Members::MapV6(Cow::Owned(vec![(5, 5, 3)])),
            ),
        ];
        let bytes = encode(&sets);
        assert_eq!(decode(&bytes).unwrap(), sets);
        for cut in 0..bytes.len() {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut long = bytes.clone();
        long.push(0);
        assert!(decode(&long).is_err());
        let mut bad = bytes;
        bad[0] = b'X';
        assert!(decode(&bad).is_err());
    }

    #[test]
    fn delta_is_the_exact_difference_of_interval_lists() {
        let m = |v: &[(u32, u32)]| Members::V4(Cow::Owned(v.to_vec()));
        let (add, del) = delta(
            &m(&[(1, 3), (5, 5), (9, 9)]),
            &m(&[(1, 4), (9, 9), (11, 12)]),
        )
        .unwrap();
        assert_eq!(add, m(&[(1, 4), (11, 12)]));
        assert_eq!(del, m(&[(1, 3), (5, 5)]));
        let (add, del) = delta(&m(&[]), &m(&[])).unwrap();
        assert!(add.is_empty() && del.is_empty());
        assert!(delta(&m(&[]), &Members::V6(Cow::Owned(vec![]))).is_none());
    }
}
