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

/// The first bytes of a full members file.
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

/// The first bytes of a members delta file.
const DELTA_MAGIC: &[u8] = b"microseg-members-delta/1\n";

/// The most delta files between a members file and the full one it
/// builds on: past it, an apply writes a full file again.
pub const MAX_CHAIN: u32 = 16;

/// A members file: the full members ([`encode`]), or the changes from
/// another members file ([`encode_delta`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembersFile {
    /// Every set's members.
    Full(NamedMembers<'static>),
    /// What changed since the file `base`.
    Delta {
        /// The members file the changes apply to.
        base: String,
        /// How many delta files lead to a full one, this one included.
        depth: u32,
        /// The changes, set by set.
        deltas: Vec<MemberDelta>,
    },
}

/// A members delta file: the element changes `deltas` from the members
/// file `base`, `depth` delta files from a full one (this one included).
/// A membership change of a set of 100,000s of elements writes a few
/// bytes instead of the whole set again.
///
/// ```
/// use microseg_host::members::{self, MemberDelta, Members, MembersFile};
/// use std::borrow::Cow;
/// let d = vec![MemberDelta {
///     set: "web_v4".into(),
///     add: Members::V4(Cow::Owned(vec![(7, 7)])),
///     delete: Members::V4(Cow::Owned(vec![])),
/// }];
/// let bytes = members::encode_delta("base.bin", 1, &d);
/// assert_eq!(
///     members::decode_file(&bytes).unwrap(),
///     MembersFile::Delta { base: "base.bin".into(), depth: 1, deltas: d }
/// );
/// ```
pub fn encode_delta(base: &str, depth: u32, deltas: &[MemberDelta]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(DELTA_MAGIC);
    out.extend_from_slice(&depth.to_le_bytes());
    out.extend_from_slice(&(base.len() as u32).to_le_bytes());
    out.extend_from_slice(base.as_bytes());
    let sets: Vec<(Cow<str>, Members)> = deltas
        .iter()
        .flat_map(|d| {
            [
                (Cow::Borrowed(d.set.as_str()), d.add.clone()),
                (Cow::Borrowed(d.set.as_str()), d.delete.clone()),
            ]
        })
        .collect();
    out.extend_from_slice(&encode(&sets)[MAGIC.len()..]);
    out
}

/// The base and depth of a members delta file from its first bytes;
/// `None` for a full members file (or too few bytes).
pub fn delta_header(bytes: &[u8]) -> Option<(String, u32)> {
    let mut r = Reader { bytes, at: 0 };
    if r.take(DELTA_MAGIC.len()).ok()? != DELTA_MAGIC {
        return None;
    }
    let depth = u32::from_le_bytes(r.array().ok()?);
    let len = u32::from_le_bytes(r.array().ok()?) as usize;
    let base = std::str::from_utf8(r.take(len).ok()?).ok()?.to_string();
    Some((base, depth))
}

/// A members file of either kind ([`encode`], [`encode_delta`]); `Err`
/// says what is wrong.
pub fn decode_file(bytes: &[u8]) -> Result<MembersFile, String> {
    if !bytes.starts_with(DELTA_MAGIC) {
        return decode(bytes).map(MembersFile::Full);
    }
    let (base, depth) = delta_header(bytes).ok_or("the delta file ends early")?;
    let at = DELTA_MAGIC.len() + 8 + base.len();
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&bytes[at..]);
    let sets = decode(&body)?;
    if sets.len() % 2 != 0 {
        return Err("a set's changes are incomplete".into());
    }
    let mut deltas = Vec::with_capacity(sets.len() / 2);
    let mut it = sets.into_iter();
    while let (Some((set, add)), Some((again, delete))) = (it.next(), it.next()) {
        if set != again || std::mem::discriminant(&add) != std::mem::discriminant(&delete) {
            return Err(format!("the changes of set {set} do not pair up"));
        }
        deltas.push(MemberDelta {
            set: set.into_owned(),
            add,
            delete,
        });
    }
    Ok(MembersFile::Delta {
        base,
        depth,
        deltas,
    })
}

/// `sets` with the changes of `chain` made, oldest first: what a chain of
/// delta files over a full members file records. `Err` when a change does
/// not fit (an element deleted that is not there, or added twice, a set
/// not there, or of another kind): the files do not belong together.
///
/// ```
/// use microseg_host::members::{self, MemberDelta, Members};
/// use std::borrow::Cow;
/// let v4 = |v: &[(u32, u32)]| Members::V4(Cow::Owned(v.to_vec()));
/// let mut sets = vec![(Cow::Borrowed("web_v4"), v4(&[(1, 1), (5, 9)]))];
/// let step = |add: &[(u32, u32)], delete: &[(u32, u32)]| {
///     vec![MemberDelta { set: "web_v4".into(), add: v4(add), delete: v4(delete) }]
/// };
/// members::patch(&mut sets, &[step(&[(7, 7)], &[(1, 1)]), step(&[(1, 1)], &[(7, 7)])]).unwrap();
/// assert_eq!(sets[0].1, v4(&[(1, 1), (5, 9)]));
/// assert!(members::patch(&mut sets, &[step(&[], &[(2, 2)])]).is_err());
/// ```
pub fn patch(sets: &mut NamedMembers, chain: &[Vec<MemberDelta>]) -> Result<(), String> {
    use std::collections::{BTreeMap, BTreeSet};
    /// The net additions and deletions of a sequence of changes.
    fn fold<T: Ord + Copy>(steps: &[(&[T], &[T])]) -> Result<(Vec<T>, Vec<T>), String> {
        let (mut add, mut del) = (BTreeSet::new(), BTreeSet::new());
        for (a, d) in steps {
            for x in *d {
                if !add.remove(x) && !del.insert(*x) {
                    return Err("an element is deleted twice".into());
                }
            }
            for x in *a {
                if !del.remove(x) && !add.insert(*x) {
                    return Err("an element is added twice".into());
                }
            }
        }
        Ok((add.into_iter().collect(), del.into_iter().collect()))
    }
    /// `old` without `del` (every one of them there) and with `add` (none
    /// of them there), sorted.
    fn apply<T: Ord + Copy>(old: &mut Cow<[T]>, add: &[T], del: &[T]) -> Result<(), String> {
        if add.is_empty() && del.is_empty() {
            return Ok(());
        }
        let v = old.to_mut();
        let before = v.len();
        if !del.is_empty() {
            v.retain(|x| del.binary_search(x).is_err());
        }
        if before - v.len() != del.len() {
            return Err("an element to delete is not there".into());
        }
        if add.len() <= 16 {
            for x in add {
                match v.binary_search(x) {
                    Ok(_) => return Err("an element to add is there already".into()),
                    Err(i) => v.insert(i, *x),
                }
            }
            return Ok(());
        }
        let mut merged = Vec::with_capacity(v.len() + add.len());
        let mut rest = add.iter().peekable();
        for x in v.iter() {
            while let Some(a) = rest.next_if(|a| *a < x) {
                merged.push(*a);
            }
            if rest.peek() == Some(&x) {
                return Err("an element to add is there already".into());
            }
            merged.push(*x);
        }
        merged.extend(rest);
        *v = merged;
        Ok(())
    }
    let mut by_set: BTreeMap<&str, Vec<(&Members, &Members)>> = BTreeMap::new();
    for d in chain.iter().flatten() {
        by_set
            .entry(d.set.as_str())
            .or_default()
            .push((&d.add, &d.delete));
    }
    for (name, steps) in by_set {
        let members = sets
            .iter_mut()
            .find(|(n, _)| n == name)
            .map(|(_, m)| m)
            .ok_or_else(|| format!("set {name} is not in the base file"))?;
        macro_rules! kind {
            ($variant:ident, $m:expr) => {{
                let steps = steps
                    .iter()
                    .map(|(a, d)| match (a, d) {
                        (Members::$variant(a), Members::$variant(d)) => Ok((&a[..], &d[..])),
                        _ => Err(format!("set {name} changes kind")),
                    })
                    .collect::<Result<Vec<_>, String>>()?;
                let (add, del) = fold(&steps)?;
                apply($m, &add, &del).map_err(|e| format!("set {name}: {e}"))?;
            }};
        }
        match members {
            Members::V4(m) => kind!(V4, m),
            Members::V6(m) => kind!(V6, m),
            Members::MapV4(m) => kind!(MapV4, m),
            Members::MapV6(m) => kind!(MapV6, m),
        }
    }
    Ok(())
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
    fn delta_files_round_trip_and_refuse_what_encode_delta_does_not_write() {
        let deltas = vec![
            MemberDelta {
                set: "in6_single".into(),
                add: Members::MapV6(Cow::Owned(vec![(5, 5, 3)])),
                delete: Members::MapV6(Cow::Owned(vec![(7, 7, 3)])),
            },
            MemberDelta {
                set: "policy:web_v4".into(),
                add: Members::V4(Cow::Owned(vec![])),
                delete: Members::V4(Cow::Owned(vec![(1, 2)])),
            },
        ];
        let bytes = encode_delta("0-1-2.bin", 3, &deltas);
        assert_eq!(
            decode_file(&bytes).unwrap(),
            MembersFile::Delta {
                base: "0-1-2.bin".into(),
                depth: 3,
                deltas,
            }
        );
        for cut in 0..bytes.len() {
            assert!(decode_file(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let full = encode(&[(Cow::Borrowed("s_v4"), Members::V4(Cow::Owned(vec![(1, 1)])))]);
        assert!(matches!(decode_file(&full), Ok(MembersFile::Full(_))));
        assert_eq!(delta_header(&full), None);
    }

    #[test]
    fn a_chain_of_changes_folds_into_one_and_must_fit() {
        let v4 = |v: &[(u32, u32)]| Members::V4(Cow::Owned(v.to_vec()));
        let step = |add: &[(u32, u32)], delete: &[(u32, u32)]| {
            vec![MemberDelta {
                set: "s".into(),
                add: v4(add),
                delete: v4(delete),
            }]
        };
        let base = || vec![(Cow::Borrowed("s"), v4(&[(1, 1), (3, 3), (5, 9)]))];
        // Added then deleted, deleted then added, widened: one merge.
        let mut sets = base();
        patch(
            &mut sets,
            &[
                step(&[(20, 20)], &[]),
                step(&[], &[(20, 20), (3, 3)]),
                step(&[(3, 3), (5, 10)], &[(5, 9)]),
            ],
        )
        .unwrap();
        assert_eq!(sets[0].1, v4(&[(1, 1), (3, 3), (5, 10)]));
        // Many additions at once (the merge rather than inserts).
        let mut sets = base();
        let many: Vec<(u32, u32)> = (0..40).map(|i| (100 + 2 * i, 100 + 2 * i)).collect();
        patch(&mut sets, &[step(&many, &[(1, 1)])]).unwrap();
        let Members::V4(r) = &sets[0].1 else { panic!() };
        assert_eq!(r.len(), 42);
        assert!(r.windows(2).all(|w| w[0] < w[1]));
        // Changes that do not fit.
        for bad in [
            vec![step(&[], &[(2, 2)])],
            vec![step(&[(1, 1)], &[])],
            vec![step(&[], &[(1, 1)]), step(&[], &[(1, 1)])],
            vec![step(&many, &[]), step(&[(100, 100)], &[])],
        ] {
            assert!(patch(&mut base(), &bad).is_err(), "{bad:?}");
        }
        let other = vec![MemberDelta {
            set: "t".into(),
            add: v4(&[]),
            delete: v4(&[]),
        }];
        assert!(patch(&mut base(), &[other]).is_err());
        let kind = vec![MemberDelta {
            set: "s".into(),
            add: Members::V6(Cow::Owned(vec![])),
            delete: Members::V6(Cow::Owned(vec![])),
        }];
        assert!(patch(&mut base(), &[kind]).is_err());
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
