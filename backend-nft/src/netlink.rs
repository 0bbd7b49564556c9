//! Set element changes straight over nfnetlink, guarded by the ruleset's
//! generation.
//!
//! nft 1.0.6 fetches every element of every interval set before it adds or
//! deletes one (it merges intervals in user space): on a table with 100,000s
//! of elements a one-address change costs most of a full load. The kernel
//! needs no such thing for exact elements, so an element delta goes as one
//! nfnetlink batch of `NEWSETELEM`/`DELSETELEM` messages, the same messages
//! nft sends: per interval `[a, b]` a start key `a` and an end key `b + 1`
//! flagged interval-end (none when `b` is the family's last address).
//!
//! The batch carries the generation the change was planned at
//! (`NFNL_BATCH_GENID`): when anything in the ruleset was committed since,
//! the kernel refuses the whole batch with `ERESTART` and nothing changes.
//! That is also what makes the ruleset generation ([`generation`]) a cheap,
//! exact test that nothing changed since microseg's last transaction.
//!
//! Elements of a verdict map (the optimised lowering's level 1) carry their
//! data, a jump to a chain, on the start key; elements of a set or map
//! without the interval flag are single keys.
//!
//! Only typed values reach the socket: table, set and chain names
//! (validated by the core and [`chain_name_ok`]) and address bytes; no
//! shell, no text parsing by another program.

use nix::sys::socket::{
    bind, recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, NetlinkAddr, SockFlag,
    SockProtocol, SockType,
};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
const NFNL_BATCH_GENID: u16 = 1;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_NEWGEN: u16 = 15;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
/// `enum nft_verdicts`: `NFT_JUMP` is -3.
const NFT_JUMP: i32 = -3;
const NFT_SET_ELEM_INTERVAL_END: u32 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NFPROTO_INET: u8 = 1;
const AF_UNSPEC: u8 = 0;
const ERESTART: i32 = 85;
/// Element messages are cut at this size (the kernel takes far larger, but
/// small messages keep error reports precise and buffers modest).
const MESSAGE_BYTES: usize = 32 * 1024;
/// Above this many bytes a delta goes through nft instead (it is then no
/// longer small, and nft's fetch no longer dominates). Well below the
/// default socket send buffer limit (`net.core.wmem_max`, 208 KiB).
pub(crate) const BATCH_LIMIT: usize = 160 * 1024;
/// The most bytes one interval takes in a batch: a start and an end key of
/// up to 16 bytes, their attributes and the end's flags.
pub(crate) const INTERVAL_BYTES: usize = 64;

/// An address interval `[start, end]` of one family, as key bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Interval {
    /// IPv4, inclusive bounds.
    V4(u32, u32),
    /// IPv6, inclusive bounds.
    V6(u128, u128),
}

impl Interval {
    /// The interval of one element as `nft -j` writes it: an address, a
    /// `{"range": [a, b]}` or a `{"prefix": {"addr": a, "len": n}}`.
    pub(crate) fn of(elem: &serde_json::Value) -> Option<Interval> {
        use serde_json::Value;
        fn addr(v: &Value) -> Option<Interval> {
            let s = v.as_str()?;
            if let Ok(a) = s.parse::<Ipv4Addr>() {
                let a = u32::from(a);
                return Some(Interval::V4(a, a));
            }
            let a = u128::from(s.parse::<Ipv6Addr>().ok()?);
            Some(Interval::V6(a, a))
        }
        match elem {
            Value::String(_) => addr(elem),
            Value::Object(m) if m.len() == 1 => {
                if let Some(Value::Array(r)) = m.get("range") {
                    match (addr(r.first()?)?, addr(r.get(1)?)?, r.len()) {
                        (Interval::V4(a, _), Interval::V4(b, _), 2) if a <= b => {
                            Some(Interval::V4(a, b))
                        }
                        (Interval::V6(a, _), Interval::V6(b, _), 2) if a <= b => {
                            Some(Interval::V6(a, b))
                        }
                        _ => None,
                    }
                } else if let Some(p) = m.get("prefix") {
                    let len = p.get("len")?.as_u64()?;
                    match addr(p.get("addr")?)? {
                        Interval::V4(a, _) if len <= 32 => {
                            let host = if len == 0 { u32::MAX } else { u32::MAX >> len };
                            (a & host == 0).then_some(Interval::V4(a, a | host))
                        }
                        Interval::V6(a, _) if len <= 128 => {
                            let host = if len == 0 {
                                u128::MAX
                            } else {
                                u128::MAX >> len
                            };
                            (a & host == 0).then_some(Interval::V6(a, a | host))
                        }
                        _ => None,
                    }
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    /// Whether the interval is one address.
    pub(crate) fn is_single(&self) -> bool {
        match *self {
            Interval::V4(a, b) => a == b,
            Interval::V6(a, b) => a == b,
        }
    }

    /// Whether the interval is of the family of `key` (`ipv4_addr`, `ipv6_addr`).
    pub(crate) fn fits(&self, key: &str) -> bool {
        matches!(
            (self, key),
            (Interval::V4(..), "ipv4_addr") | (Interval::V6(..), "ipv6_addr")
        )
    }

    /// The kernel's keys: the start, and the end (exclusive, flagged
    /// interval-end) unless the interval runs to the last address.
    fn keys(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match *self {
            Interval::V4(a, b) => (
                a.to_be_bytes().to_vec(),
                b.checked_add(1).map(|e| e.to_be_bytes().to_vec()),
            ),
            Interval::V6(a, b) => (
                a.to_be_bytes().to_vec(),
                b.checked_add(1).map(|e| e.to_be_bytes().to_vec()),
            ),
        }
    }
}

/// The changes of one interval set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetChange<'a> {
    pub(crate) set: &'a str,
    /// Whether the set has the interval flag (else every element is a
    /// single address, sent as one key).
    pub(crate) interval: bool,
    /// Elements to add, with the chain a verdict map's element jumps to.
    pub(crate) add: Vec<(Interval, Option<&'a str>)>,
    pub(crate) delete: Vec<Interval>,
}

/// Whether `name` can be a chain name in a batch: what the lowering writes
/// (letters, digits, `_`, `-`; at most 255 bytes, the kernel's limit).
pub(crate) fn chain_name_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() < 256
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Why a batch did not apply. Nothing changed in any case.
#[derive(Debug)]
pub(crate) enum BatchError {
    /// The ruleset was changed since the generation the batch carried.
    GenerationChanged,
    /// The kernel refused a message (`errno`, the set it was about).
    Refused { errno: i32, set: String },
    /// The socket failed.
    Io(std::io::Error),
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BatchError::GenerationChanged => {
                f.write_str("the ruleset changed since it was read (generation mismatch)")
            }
            BatchError::Refused { errno, set } => write!(
                f,
                "the kernel refused the element change of set {set}: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            BatchError::Io(e) => write!(f, "netlink: {e}"),
        }
    }
}

impl From<nix::Error> for BatchError {
    fn from(e: nix::Error) -> BatchError {
        BatchError::Io(std::io::Error::from(e))
    }
}

/// A netfilter netlink socket, in this network namespace or in a named one
/// (`/run/netns/NAME`, as `ip netns` keeps them).
pub(crate) struct Netlink {
    fd: OwnedFd,
    seq: std::cell::Cell<u32>,
}

impl Netlink {
    /// Opens the socket; for `netns`, on a thread that joined that
    /// namespace (a socket stays in the namespace it was made in).
    pub(crate) fn open(netns: Option<&str>) -> std::io::Result<Netlink> {
        let make = || -> std::io::Result<OwnedFd> {
            let fd = socket(
                AddressFamily::Netlink,
                SockType::Raw,
                SockFlag::SOCK_CLOEXEC,
                SockProtocol::NetlinkNetFilter,
            )?;
            bind(fd.as_raw_fd(), &NetlinkAddr::new(0, 0))?;
            // A reply that never comes must not hang an apply.
            setsockopt(
                &fd,
                sockopt::ReceiveTimeout,
                &nix::sys::time::TimeVal::new(10, 0),
            )?;
            // Room for the replies of a batch (errors echo their message).
            let _ = setsockopt(&fd, sockopt::RcvBuf, &(1 << 20));
            Ok(fd)
        };
        let fd = match netns {
            None => make()?,
            Some(name) => {
                if name.is_empty() || name.contains('/') || name.starts_with('.') {
                    return Err(std::io::Error::other(format!(
                        "bad network namespace name {name:?}"
                    )));
                }
                let path = format!("/run/netns/{name}");
                std::thread::scope(|s| {
                    s.spawn(|| {
                        let ns = std::fs::File::open(&path)?;
                        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
                        make()
                    })
                    .join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("namespace thread panicked")))
                })?
            }
        };
        Ok(Netlink {
            fd,
            seq: std::cell::Cell::new(1),
        })
    }

    fn next_seq(&self) -> u32 {
        let s = self.seq.get();
        self.seq.set(s.wrapping_add(1));
        s
    }

    /// The ruleset's generation: it grows by one with every committed
    /// transaction, by anyone, on any table.
    pub(crate) fn generation(&self) -> std::io::Result<u32> {
        let mut m = Msg::default();
        let seq = self.next_seq();
        m.begin(
            (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN,
            NLM_F_REQUEST,
            seq,
            AF_UNSPEC,
            0,
        );
        m.end();
        send(self.fd.as_raw_fd(), &m.buf, MsgFlags::empty())?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty())?;
            for (ty, mseq, payload) in messages(&buf[..n]) {
                if mseq != seq {
                    continue;
                }
                if ty == NLMSG_ERROR {
                    let errno = error_code(payload);
                    if errno != 0 {
                        return Err(std::io::Error::from_raw_os_error(errno));
                    }
                } else if ty == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN {
                    // nfgenmsg (4 bytes), then the attributes.
                    if let Some(v) = attrs(payload.get(4..).unwrap_or_default())
                        .find(|(t, _)| *t == NFTA_GEN_ID)
                        .and_then(|(_, v)| v.get(..4))
                    {
                        return Ok(u32::from_be_bytes([v[0], v[1], v[2], v[3]]));
                    }
                    return Err(std::io::Error::other("generation reply without an id"));
                } else if ty == NLMSG_DONE {
                    return Err(std::io::Error::other("no generation in the reply"));
                }
            }
        }
    }

    /// Deletes, then adds, the intervals of `changes` in table `inet
    /// table`, as one batch that the kernel commits only at `generation`.
    pub(crate) fn change_elements(
        &self,
        generation: u32,
        table: &str,
        changes: &[SetChange<'_>],
    ) -> Result<(), BatchError> {
        let mut m = Msg::default();
        let begin = self.next_seq();
        m.begin(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        m.attr(NFNL_BATCH_GENID, &generation.to_be_bytes());
        m.end();
        let mut sets_by_seq: Vec<(u32, &str)> = Vec::new();
        // Deletes first: a grown interval is deleted and re-added, and the
        // new one must not overlap the old.
        for (ty, flags, pick) in [
            (NFT_MSG_DELSETELEM, NLM_F_REQUEST, 0usize),
            (NFT_MSG_NEWSETELEM, NLM_F_REQUEST | NLM_F_CREATE, 1),
        ] {
            for c in changes {
                let list: Vec<(Interval, Option<&str>)> = if pick == 0 {
                    c.delete.iter().map(|&i| (i, None)).collect()
                } else {
                    c.add.clone()
                };
                let mut rest = &list[..];
                while !rest.is_empty() {
                    let seq = self.next_seq();
                    sets_by_seq.push((seq, c.set));
                    m.begin(
                        (NFNL_SUBSYS_NFTABLES << 8) | ty,
                        flags,
                        seq,
                        NFPROTO_INET,
                        0,
                    );
                    m.attr_str(NFTA_SET_ELEM_LIST_TABLE, table);
                    m.attr_str(NFTA_SET_ELEM_LIST_SET, c.set);
                    let list_at = m.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
                    let start = m.buf.len();
                    while let Some(((iv, jump), tail)) = rest.split_first() {
                        if m.buf.len() - start > MESSAGE_BYTES {
                            break;
                        }
                        let (a, end) = iv.keys();
                        m.element(&a, 0, *jump);
                        if let (Some(e), true) = (end, c.interval) {
                            m.element(&e, NFT_SET_ELEM_INTERVAL_END, None);
                        }
                        rest = tail;
                    }
                    m.nest_end(list_at);
                    m.end();
                }
            }
        }
        let end = self.next_seq();
        m.begin(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end,
            AF_UNSPEC,
            NFNL_SUBSYS_NFTABLES,
        );
        m.end();
        if m.buf.len() > BATCH_LIMIT {
            return Err(BatchError::Io(std::io::Error::other("batch too large")));
        }
        send(self.fd.as_raw_fd(), &m.buf, MsgFlags::empty())?;
        // The kernel handles the batch inside `send`: every reply is queued
        // by now. Without NLM_F_ACK only errors are answered.
        let mut buf = vec![0u8; 256 * 1024];
        let mut first_error = None;
        loop {
            let n = match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(nix::errno::Errno::EAGAIN) => break,
                Err(e) => return Err(e.into()),
            };
            for (ty, seq, payload) in messages(&buf[..n]) {
                if ty != NLMSG_ERROR {
                    continue;
                }
                let errno = error_code(payload);
                if errno == 0 {
                    continue;
                }
                if seq == begin && errno == ERESTART {
                    first_error.get_or_insert(BatchError::GenerationChanged);
                } else {
                    let set = sets_by_seq
                        .iter()
                        .find(|(s, _)| *s == seq)
                        .map_or("?", |(_, n)| n);
                    first_error.get_or_insert(BatchError::Refused {
                        errno,
                        set: set.to_string(),
                    });
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// A netlink message buffer.
#[derive(Default)]
struct Msg {
    buf: Vec<u8>,
    at: usize,
}

impl Msg {
    fn begin(&mut self, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        self.at = self.buf.len();
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // length, set by `end`
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        self.buf.extend_from_slice(&[family, 0]);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    fn end(&mut self) {
        self.pad();
        let len = (self.buf.len() - self.at) as u32;
        self.buf[self.at..self.at + 4].copy_from_slice(&len.to_ne_bytes());
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        self.buf
            .extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
    }

    fn attr_str(&mut self, ty: u16, s: &str) {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v);
    }

    fn nest_begin(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn nest_end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn element(&mut self, key: &[u8], flags: u32, jump: Option<&str>) {
        let elem = self.nest_begin(NFTA_LIST_ELEM);
        let k = self.nest_begin(NFTA_SET_ELEM_KEY);
        self.attr(NFTA_DATA_VALUE, key);
        self.nest_end(k);
        if flags != 0 {
            self.attr(NFTA_SET_ELEM_FLAGS, &flags.to_be_bytes());
        }
        if let Some(chain) = jump {
            let data = self.nest_begin(NFTA_SET_ELEM_DATA);
            let verdict = self.nest_begin(NFTA_DATA_VERDICT);
            self.attr(NFTA_VERDICT_CODE, &NFT_JUMP.to_be_bytes());
            self.attr_str(NFTA_VERDICT_CHAIN, chain);
            self.nest_end(verdict);
            self.nest_end(data);
        }
        self.nest_end(elem);
    }
}

/// The messages in a buffer: (type, sequence number, payload).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, u32, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        if len < 16 || len > rest.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([rest[4], rest[5]]);
        let seq = u32::from_ne_bytes([rest[8], rest[9], rest[10], rest[11]]);
        let payload = &rest[16..len];
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        Some((ty, seq, payload))
    })
}

/// The attributes in a buffer: (type without flags, value).
fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        if len < 4 || len > rest.len() {
            return None;
        }
        let ty = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        let v = &rest[4..len];
        rest = &rest[((len + 3) & !3).min(rest.len())..];
        Some((ty, v))
    })
}

/// The (positive) errno of an `NLMSG_ERROR` payload; 0 for an ack.
fn error_code(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .map_or(0, |b| -i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn intervals_of_elements() {
        assert_eq!(
            Interval::of(&json!("10.0.0.1")),
            Some(Interval::V4(0x0a00_0001, 0x0a00_0001))
        );
        assert_eq!(
            Interval::of(&json!({"range": ["10.0.0.1", "10.0.0.9"]})),
            Some(Interval::V4(0x0a00_0001, 0x0a00_0009))
        );
        assert_eq!(
            Interval::of(&json!({"prefix": {"addr": "10.0.0.0", "len": 24}})),
            Some(Interval::V4(0x0a00_0000, 0x0a00_00ff))
        );
        assert_eq!(
            Interval::of(&json!({"prefix": {"addr": "::", "len": 0}})),
            Some(Interval::V6(0, u128::MAX))
        );
        assert_eq!(
            Interval::of(&json!({"range": ["10.0.0.9", "10.0.0.1"]})),
            None
        );
        assert_eq!(Interval::of(&json!({"range": ["10.0.0.1", "::1"]})), None);
        assert_eq!(
            Interval::of(&json!({"prefix": {"addr": "10.0.0.1", "len": 24}})),
            None
        );
        assert_eq!(Interval::of(&json!(80)), None);
        assert!(Interval::V4(1, 1).fits("ipv4_addr") && !Interval::V4(1, 1).fits("ipv6_addr"));
    }

    #[test]
    fn keys_end_after_the_interval_unless_it_reaches_the_last_address() {
        assert_eq!(
            Interval::V4(1, 2).keys(),
            (vec![0, 0, 0, 1], Some(vec![0, 0, 0, 3]))
        );
        assert_eq!(Interval::V4(1, u32::MAX).keys().1, None);
        assert_eq!(Interval::V6(0, u128::MAX).keys().1, None);
    }

    #[test]
    fn messages_are_aligned_and_parse_back() {
        let mut m = Msg::default();
        m.begin(0x0a0c, NLM_F_REQUEST, 7, NFPROTO_INET, 0);
        m.attr_str(NFTA_SET_ELEM_LIST_TABLE, "ms");
        let at = m.nest_begin(NFTA_SET_ELEM_LIST_ELEMENTS);
        m.element(&[10, 0, 0, 1], 0, None);
        m.element(&[10, 0, 0, 2], NFT_SET_ELEM_INTERVAL_END, None);
        m.nest_end(at);
        m.end();
        assert_eq!(m.buf.len() % 4, 0);
        let parsed: Vec<_> = messages(&m.buf).collect();
        assert_eq!(parsed.len(), 1);
        let (ty, seq, payload) = parsed[0];
        assert_eq!((ty, seq), (0x0a0c, 7));
        let a: Vec<_> = attrs(&payload[4..]).collect();
        assert_eq!(a[0], (NFTA_SET_ELEM_LIST_TABLE, &b"ms\0"[..]));
        assert_eq!(a[1].0, NFTA_SET_ELEM_LIST_ELEMENTS);
        let elems: Vec<_> = attrs(a[1].1).collect();
        assert_eq!(elems.len(), 2);
        let second: Vec<_> = attrs(elems[1].1).collect();
        assert_eq!(second[1], (NFTA_SET_ELEM_FLAGS, &1u32.to_be_bytes()[..]));
    }
}
