//! A model of the kernel for the nftables JSON this crate emits: an
//! interpreter that reads an [`Nftables`] document (not the IR) and decides
//! what happens to a new connection.
//!
//! ```
//! use backend_nft::{model::NftModel, NftRenderer};
//! use microseg_core::{backend::Renderer, document::Format, ir::{compile, Direction, Target}, Policy};
//! use microseg_core::{ports::Proto, semantics::{Connection, Verdict}};
//! let p = Policy::from_str_as(r#"
//! version = 1
//! [groups]
//! web = ["10.0.1.10-10.0.1.19"]
//! app = ["10.0.1.20"]
//! [roles.app]
//! [[flows]]
//! name = "web-to-app"
//! from = "web"
//! to = "app"
//! ports = ["tcp/8080"]
//! "#, Format::Toml, None).unwrap();
//! let artefact = NftRenderer.render(&compile(&p, &Target::Role("app".into())).unwrap()).unwrap();
//! let model = NftModel::from_document(artefact.document()).unwrap();
//! let c = Connection::new("10.0.1.11".parse().unwrap(), "10.0.1.20".parse().unwrap(), Proto::Tcp(8080));
//! let d = model.decide(Direction::Input, &c).unwrap();
//! assert_eq!(d.verdict, Verdict::Accept);
//! assert_eq!(d.comment.as_deref(), Some("flow:web-to-app"));
//! let c = Connection::new("10.0.1.11".parse().unwrap(), "10.0.1.20".parse().unwrap(), Proto::Tcp(22));
//! assert_eq!(model.decide(Direction::Input, &c).unwrap().comment.as_deref(), Some("baseline:default"));
//! ```
//!
//! The model replays the document's commands (`add`/`delete table`, `add
//! set`, `add chain`, `add rule`, `add`/`delete element`; listed objects as
//! `nft -j list` prints them count as `add`), then runs a packet through the
//! base chains of its hook in priority order, as the kernel does: rules in
//! order, statements left to right, a failed match ends the rule, `jump`
//! returns, `goto` does not, falling off a base chain applies its policy.
//!
//! It knows exactly the subset the lowerings emit and refuses everything
//! else with [`NftError::Model`] rather than guess:
//!
//! * keys: `meta nfproto`, `meta l4proto`, `ip`/`ip6` `saddr`/`daddr`,
//!   `tcp`/`udp`/`th` `dport`, `icmp`/`icmpv6` `type`, `ct state`,
//!   `meta iif`/`oif`, and concatenations of them;
//! * right-hand sides: literals, prefixes, ranges, lists (`ct state`),
//!   anonymous sets, `@set` references to named sets (with interval,
//!   prefix, range and concatenated elements);
//! * statements: `match` (`==`, `!=`, `in`), `counter`, `limit` (a rule with
//!   a limit may not decide a verdict: the model cannot know the rate),
//!   `log`, `accept`, `drop`, `reject`, `jump`, `goto`, `return`,
//!   `continue`, and `vmap` lookups over anonymous maps.
//!
//! Header fields follow the kernel's dependencies: `ip saddr` of an IPv6
//! packet, `tcp dport` of a UDP packet or `oif` on input make the rule fail.
//! `th dport` of an ICMP packet reads the ICMP checksum, which the packet
//! carries ([`Packet::icmp_checksum`]): a lowering that relies on its value
//! is caught by varying it. A vmap lookup that finds two elements is an
//! error (nft refuses overlapping interval elements).

use crate::NftError;
use microseg_core::ir::Direction;
use microseg_core::ports::Proto;
use microseg_core::semantics::{Connection, Verdict};
use nftables::expr::{Expression, MetaKey, NamedExpression, Payload, SetItem, Verdict as VExpr};
use nftables::schema::{NfCmd, NfListObject, NfObject, Nftables, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{Operator, Statement};
use nftables::types::NfHook;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

fn unsupported(what: impl std::fmt::Display) -> NftError {
    NftError::Model {
        message: what.to_string(),
    }
}

fn json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).unwrap_or_else(|e| e.to_string())
}

/// `ifindex` of `lo`: always 1 (what `meta iif "lo"` compares).
const LO_INDEX: u128 = 1;
/// The `ifindex` the model gives every other interface.
const ETH_INDEX: u128 = 2;

/// A header or meta field the model can read from a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Nfproto,
    L4proto,
    Saddr4,
    Daddr4,
    Saddr6,
    Daddr6,
    TcpDport,
    UdpDport,
    ThDport,
    IcmpType,
    Icmpv6Type,
    CtState,
    Iif,
    Oif,
}

impl Field {
    fn of(e: &Expression) -> Result<Field, NftError> {
        let f = match e {
            Expression::Named(NamedExpression::Meta(m)) => match m.key {
                MetaKey::Nfproto => Field::Nfproto,
                MetaKey::L4proto => Field::L4proto,
                MetaKey::Iif => Field::Iif,
                MetaKey::Oif => Field::Oif,
                _ => return Err(unsupported(format!("meta key {}", json(&m.key)))),
            },
            Expression::Named(NamedExpression::Payload(Payload::PayloadField(p))) => {
                match (p.protocol.as_ref(), p.field.as_ref()) {
                    ("ip", "saddr") => Field::Saddr4,
                    ("ip", "daddr") => Field::Daddr4,
                    ("ip6", "saddr") => Field::Saddr6,
                    ("ip6", "daddr") => Field::Daddr6,
                    ("tcp", "dport") => Field::TcpDport,
                    ("udp", "dport") => Field::UdpDport,
                    ("th", "dport") => Field::ThDport,
                    ("icmp", "type") => Field::IcmpType,
                    ("icmpv6", "type") => Field::Icmpv6Type,
                    (proto, field) => return Err(unsupported(format!("payload {proto} {field}"))),
                }
            }
            Expression::Named(NamedExpression::CT(ct))
                if ct.key == "state" && ct.family.is_none() && ct.dir.is_none() =>
            {
                Field::CtState
            }
            other => return Err(unsupported(format!("key expression {}", json(other)))),
        };
        Ok(f)
    }

    /// The field's width in bits, for prefixes.
    fn bits(self) -> u32 {
        match self {
            Field::Saddr4 | Field::Daddr4 => 32,
            Field::Saddr6 | Field::Daddr6 => 128,
            Field::TcpDport | Field::UdpDport | Field::ThDport => 16,
            _ => 32,
        }
    }

    /// The set type that holds this field's values.
    fn set_type(self) -> Option<SetType> {
        Some(match self {
            Field::Saddr4 | Field::Daddr4 => SetType::Ipv4Addr,
            Field::Saddr6 | Field::Daddr6 => SetType::Ipv6Addr,
            Field::TcpDport | Field::UdpDport | Field::ThDport => SetType::InetService,
            Field::L4proto => SetType::InetProto,
            _ => return None,
        })
    }

    /// Parses a literal of this field's type.
    fn parse(self, e: &Expression) -> Result<u128, NftError> {
        let bad = || unsupported(format!("value {} for {self:?}", json(e)));
        match (self, e) {
            (Field::Saddr4 | Field::Daddr4, Expression::String(s)) => match s.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => Ok(u128::from(u32::from(a))),
                _ => Err(bad()),
            },
            (Field::Saddr6 | Field::Daddr6, Expression::String(s)) => match s.parse::<IpAddr>() {
                Ok(IpAddr::V6(a)) => Ok(u128::from(a)),
                _ => Err(bad()),
            },
            (Field::TcpDport | Field::UdpDport | Field::ThDport, Expression::Number(n))
                if *n <= 65535 =>
            {
                Ok(u128::from(*n))
            }
            (Field::L4proto, Expression::String(s)) => match s.as_ref() {
                "tcp" => Ok(6),
                "udp" => Ok(17),
                "icmp" => Ok(1),
                "ipv6-icmp" | "icmpv6" => Ok(58),
                _ => Err(bad()),
            },
            (Field::L4proto, Expression::Number(n)) if *n <= 255 => Ok(u128::from(*n)),
            (Field::Nfproto, Expression::String(s)) => match s.as_ref() {
                "ipv4" => Ok(2),
                "ipv6" => Ok(10),
                _ => Err(bad()),
            },
            (Field::Iif | Field::Oif, Expression::String(s)) if s == "lo" => Ok(LO_INDEX),
            (Field::CtState, Expression::String(s)) => match s.as_ref() {
                "invalid" => Ok(1),
                "established" => Ok(2),
                "related" => Ok(4),
                "new" => Ok(8),
                "untracked" => Ok(64),
                _ => Err(bad()),
            },
            (Field::IcmpType, Expression::String(s)) => icmp_type(s).ok_or_else(bad),
            (Field::Icmpv6Type, Expression::String(s)) => icmpv6_type(s).ok_or_else(bad),
            (Field::IcmpType | Field::Icmpv6Type, Expression::Number(n)) if *n <= 255 => {
                Ok(u128::from(*n))
            }
            _ => Err(bad()),
        }
    }
}

fn icmp_type(name: &str) -> Option<u128> {
    Some(match name {
        "echo-reply" => 0,
        "destination-unreachable" => 3,
        "redirect" => 5,
        "echo-request" => 8,
        "time-exceeded" => 11,
        "parameter-problem" => 12,
        _ => return None,
    })
}

fn icmpv6_type(name: &str) -> Option<u128> {
    Some(match name {
        "destination-unreachable" => 1,
        "packet-too-big" => 2,
        "time-exceeded" => 3,
        "parameter-problem" => 4,
        "echo-request" => 128,
        "echo-reply" => 129,
        "nd-router-solicit" => 133,
        "nd-router-advert" => 134,
        "nd-neighbor-solicit" => 135,
        "nd-neighbor-advert" => 136,
        "nd-redirect" => 137,
        _ => return None,
    })
}

/// A packet as the filter hooks see it.
///
/// ```
/// use backend_nft::model::Packet;
/// use microseg_core::{ir::Direction, ports::Proto, semantics::Connection};
/// let c = Connection::new("10.0.0.1".parse().unwrap(), "127.0.0.1".parse().unwrap(), Proto::Tcp(80));
/// let p = Packet::new_connection(Direction::Output, &c);
/// assert!(p.loopback); // routed through `lo`
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// The hook that sees it: input (to this host) or output (from it).
    pub direction: Direction,
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Protocol and destination port (ICMP: an echo request).
    pub proto: Proto,
    /// True if it goes through `lo` (`iif`/`oif` is `lo`), else another interface.
    pub loopback: bool,
    /// The conntrack state bit (`new` = 8, `established` = 2, …).
    pub ct_state: u32,
    /// What `th dport` reads in an ICMP packet: its checksum.
    pub icmp_checksum: u16,
}

impl Packet {
    /// The first packet of a new connection: conntrack state `new`, through
    /// `lo` iff the destination is a loopback address or the source itself
    /// (as the kernel routes it), ICMP checksum 0.
    ///
    /// ```
    /// use backend_nft::model::Packet;
    /// use microseg_core::{ir::Direction, ports::Proto, semantics::Connection};
    /// let c = Connection::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), Proto::Icmp);
    /// let p = Packet::new_connection(Direction::Input, &c);
    /// assert!(!p.loopback);
    /// assert_eq!(p.ct_state, 8);
    /// ```
    pub fn new_connection(direction: Direction, c: &Connection) -> Packet {
        Packet {
            direction,
            src: c.src,
            dst: c.dst,
            proto: c.proto,
            loopback: c.dst.is_loopback() || c.src == c.dst,
            ct_state: 8,
            icmp_checksum: 0,
        }
    }

    fn l4proto(&self) -> u128 {
        match (self.proto, self.src) {
            (Proto::Tcp(_), _) => 6,
            (Proto::Udp(_), _) => 17,
            (Proto::Icmp, _) => 1,
            (Proto::Icmpv6, _) => 58,
        }
    }

    /// The value of a field, or `None` where the kernel's dependency fails.
    fn get(&self, f: Field) -> Option<u128> {
        let v4 = |a: IpAddr| match a {
            IpAddr::V4(a) => Some(u128::from(u32::from(a))),
            IpAddr::V6(_) => None,
        };
        let v6 = |a: IpAddr| match a {
            IpAddr::V6(a) => Some(u128::from(a)),
            IpAddr::V4(_) => None,
        };
        let iface = if self.loopback { LO_INDEX } else { ETH_INDEX };
        match f {
            Field::Nfproto => Some(if self.src.is_ipv4() { 2 } else { 10 }),
            Field::L4proto => Some(self.l4proto()),
            Field::Saddr4 => v4(self.src),
            Field::Daddr4 => v4(self.dst),
            Field::Saddr6 => v6(self.src),
            Field::Daddr6 => v6(self.dst),
            Field::TcpDport => match self.proto {
                Proto::Tcp(p) => Some(u128::from(p)),
                _ => None,
            },
            Field::UdpDport => match self.proto {
                Proto::Udp(p) => Some(u128::from(p)),
                _ => None,
            },
            Field::ThDport => match self.proto {
                Proto::Tcp(p) | Proto::Udp(p) => Some(u128::from(p)),
                Proto::Icmp | Proto::Icmpv6 => Some(u128::from(self.icmp_checksum)),
            },
            // In family inet, `icmp type` depends on `meta l4proto icmp` (and
            // nft adds `meta nfproto ipv4`), `icmpv6 type` likewise.
            Field::IcmpType => (self.proto == Proto::Icmp && self.src.is_ipv4()).then_some(8),
            Field::Icmpv6Type => (self.proto == Proto::Icmpv6 && self.src.is_ipv6()).then_some(128),
            Field::CtState => Some(u128::from(self.ct_state)),
            Field::Iif => (self.direction == Direction::Input).then_some(iface),
            Field::Oif => (self.direction == Direction::Output).then_some(iface),
        }
    }
}

/// One element: a range per field of the key.
type Elem = Vec<(u128, u128)>;

/// Elements of a set (named or anonymous), by key fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Elems {
    elems: Vec<Elem>,
}

impl Elems {
    fn matching<'a>(&'a self, key: &'a [u128]) -> impl Iterator<Item = usize> + 'a {
        self.elems.iter().enumerate().filter_map(move |(i, e)| {
            (e.len() == key.len() && e.iter().zip(key).all(|(&(lo, hi), &k)| lo <= k && k <= hi))
                .then_some(i)
        })
    }
}

/// Parses one element expression for `fields` (a concatenation when more than one).
fn element(fields: &[Field], e: &Expression, interval: bool) -> Result<Elem, NftError> {
    let parts: Vec<&Expression> = match (fields.len(), e) {
        (1, _) => vec![e],
        (_, Expression::Named(NamedExpression::Concat(v))) if v.len() == fields.len() => {
            v.iter().collect()
        }
        _ => return Err(unsupported(format!("element {} for {fields:?}", json(e)))),
    };
    let mut out = Vec::with_capacity(fields.len());
    for (&f, part) in fields.iter().zip(parts) {
        let range = match part {
            Expression::Range(r) => {
                let (lo, hi) = (f.parse(&r.range[0])?, f.parse(&r.range[1])?);
                if lo > hi {
                    return Err(unsupported(format!("reversed range {}", json(part))));
                }
                (lo, hi)
            }
            Expression::Named(NamedExpression::Prefix(p)) => {
                let bits = f.bits();
                if p.len > bits {
                    return Err(unsupported(format!("prefix {}", json(part))));
                }
                let a = f.parse(&p.addr)?;
                let host = if p.len == 0 {
                    if bits == 128 {
                        u128::MAX
                    } else {
                        (1u128 << bits) - 1
                    }
                } else {
                    (1u128 << (bits - p.len)) - 1
                };
                if a & host != 0 {
                    return Err(unsupported(format!("prefix with host bits {}", json(part))));
                }
                (a, a | host)
            }
            _ => {
                let v = f.parse(part)?;
                (v, v)
            }
        };
        if !interval && range.0 != range.1 {
            return Err(unsupported(format!(
                "interval element {} in a set without the interval flag",
                json(e)
            )));
        }
        out.push(range);
    }
    Ok(out)
}

/// What a rule's verdict (or a vmap's data) does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Accept,
    Drop,
    Reject,
    Jump(String),
    Goto(String),
    Return,
    Continue,
}

impl Action {
    fn of_expr(e: &Expression) -> Result<Action, NftError> {
        Ok(match e {
            Expression::Verdict(VExpr::Accept) => Action::Accept,
            Expression::Verdict(VExpr::Drop) => Action::Drop,
            Expression::Verdict(VExpr::Continue) => Action::Continue,
            Expression::Verdict(VExpr::Return) => Action::Return,
            Expression::Verdict(VExpr::Jump(t)) => Action::Jump(t.target.to_string()),
            Expression::Verdict(VExpr::Goto(t)) => Action::Goto(t.target.to_string()),
            other => return Err(unsupported(format!("vmap data {}", json(other)))),
        })
    }
}

/// A right-hand side: an anonymous set of elements or a named set.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rhs {
    Anon(Elems),
    Named(String),
}

/// A compiled statement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stmt {
    Match {
        key: Vec<Field>,
        negate: bool,
        rhs: Rhs,
    },
    /// `ct state established,related`: a flag list.
    Flags {
        key: Field,
        mask: u128,
    },
    Counter,
    Limit,
    Log,
    Verdict(Action),
    Vmap {
        key: Vec<Field>,
        elems: Elems,
        actions: Vec<Action>,
    },
    /// `vmap @name`: a named verdict map, looked up when the rule runs.
    VmapNamed {
        key: Vec<Field>,
        map: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RuleDef {
    stmts: Vec<Stmt>,
    comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ChainDef {
    base: Option<(Direction, i32, Verdict)>,
    rules: Vec<RuleDef>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct SetDef {
    key: Vec<SetType>,
    interval: bool,
    elems: Elems,
    /// A verdict map's data, per element (`None`: a set).
    data: Option<Vec<Action>>,
}

impl SetDef {
    /// Parses one element: a key, or `[key, verdict]` for a verdict map.
    fn parse(&self, e: &Expression) -> Result<(Elem, Option<Action>), NftError> {
        let fields = set_fields(&self.key)?;
        match (&self.data, e) {
            (None, _) => Ok((element(&fields, e, self.interval)?, None)),
            (Some(_), Expression::List(kv)) if kv.len() == 2 => Ok((
                element(&fields, &kv[0], self.interval)?,
                Some(Action::of_expr(&kv[1])?),
            )),
            (Some(_), other) => Err(unsupported(format!(
                "verdict map element {} (want [key, verdict])",
                json(other)
            ))),
        }
    }

    fn push(&mut self, e: &Expression) -> Result<(), NftError> {
        let (el, action) = self.parse(e)?;
        self.elems.elems.push(el);
        if let (Some(data), Some(a)) = (&mut self.data, action) {
            data.push(a);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Table {
    sets: HashMap<String, SetDef>,
    chains: BTreeMap<String, ChainDef>,
}

/// The decision of the model for one packet.
///
/// ```
/// let d = backend_nft::model::ModelDecision {
///     verdict: microseg_core::semantics::Verdict::Drop,
///     table: Some("microseg".into()), chain: Some("input".into()),
///     comment: Some("baseline:default".into()), logged: false, path: vec!["input".into()], rules: 4 };
/// assert_eq!(d.comment.as_deref(), Some("baseline:default"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDecision {
    /// What happens to the packet.
    pub verdict: Verdict,
    /// The table of the deciding rule (`None`: no chain on the hook, or a policy).
    pub table: Option<String>,
    /// The chain of the deciding rule, or the base chain whose policy decided.
    pub chain: Option<String>,
    /// The comment of the deciding rule (`None`: a chain policy decided, or
    /// the rule has no comment).
    pub comment: Option<String>,
    /// True if a `log` statement ran on the way.
    pub logged: bool,
    /// The chains entered, in order (`input`, `in4_0`, `f_web`).
    pub path: Vec<String>,
    /// How many rules the packet met (ran, in whole or until a match failed).
    pub rules: usize,
}

/// The interpreter; see the [module docs](self).
///
/// ```
/// let doc: nftables::schema::Nftables = serde_json::from_str(r#"{"nftables": [
///   {"add": {"table": {"family": "inet", "name": "t"}}},
///   {"add": {"chain": {"family": "inet", "table": "t", "name": "input",
///     "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}},
///   {"add": {"rule": {"family": "inet", "table": "t", "chain": "input", "expr": [
///     {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}},
///     {"accept": null}]}}}]}"#).unwrap();
/// let m = backend_nft::model::NftModel::from_document(&doc).unwrap();
/// use microseg_core::{ir::Direction, ports::Proto, semantics::{Connection, Verdict}};
/// let c = |p| Connection::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), p);
/// assert_eq!(m.decide(Direction::Input, &c(Proto::Tcp(22))).unwrap().verdict, Verdict::Accept);
/// assert_eq!(m.decide(Direction::Input, &c(Proto::Udp(22))).unwrap().verdict, Verdict::Drop);
/// assert_eq!(m.decide(Direction::Output, &c(Proto::Udp(22))).unwrap().verdict, Verdict::Accept);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NftModel {
    /// Tables of family inet, by name.
    tables: BTreeMap<String, Table>,
}

/// Most nested `jump`s nft allows.
const MAX_DEPTH: usize = 16;

enum Flow {
    Next,
    Break,
    Done(Action),
}

impl NftModel {
    /// Replays a document's commands (or a listing's objects).
    ///
    /// ```
    /// # use backend_nft::{model::NftModel, NftRenderer};
    /// # use microseg_core::{backend::Renderer, document::Format, ir::{compile, Target}, Policy};
    /// # let p = Policy::from_str_as("version = 1\n[groups]\nweb = [\"10.0.0.1\"]\n[roles.web]\n", Format::Toml, None).unwrap();
    /// let a = NftRenderer.render(&compile(&p, &Target::Role("web".into())).unwrap()).unwrap();
    /// let m = NftModel::from_document(a.document()).unwrap();
    /// assert_eq!(m.tables(), ["microseg"]);
    /// ```
    pub fn from_document(doc: &Nftables) -> Result<NftModel, NftError> {
        let mut m = NftModel::default();
        for o in doc.objects.iter() {
            match o {
                NfObject::CmdObject(NfCmd::Add(obj)) | NfObject::ListObject(obj) => m.add(obj)?,
                NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(t))) => {
                    inet(&t.family)?;
                    if m.tables.remove(t.name.as_ref()).is_none() {
                        return Err(unsupported(format!(
                            "delete table inet {}: no such table",
                            t.name
                        )));
                    }
                }
                NfObject::CmdObject(NfCmd::Delete(NfListObject::Element(e))) => {
                    let set = m.set_mut(&e.table, &e.name)?;
                    for x in e.elem.iter() {
                        let (el, _) = set.parse(x)?;
                        let before = set.elems.elems.len();
                        if let Some(i) = set.elems.elems.iter().position(|y| *y == el) {
                            set.elems.elems.remove(i);
                            if let Some(d) = &mut set.data {
                                d.remove(i);
                            }
                        }
                        if set.elems.elems.len() == before {
                            return Err(unsupported(format!(
                                "delete element {} from set {}: not in the set",
                                json(x),
                                e.name
                            )));
                        }
                    }
                }
                other => return Err(unsupported(format!("command {}", json(other)))),
            }
        }
        Ok(m)
    }

    /// The names of the tables (family inet).
    ///
    /// ```
    /// assert!(backend_nft::model::NftModel::default().tables().is_empty());
    /// ```
    pub fn tables(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    fn set_mut(&mut self, table: &str, name: &str) -> Result<&mut SetDef, NftError> {
        self.tables
            .get_mut(table)
            .and_then(|t| t.sets.get_mut(name))
            .ok_or_else(|| unsupported(format!("no set {name} in table inet {table}")))
    }

    fn add(&mut self, obj: &NfListObject) -> Result<(), NftError> {
        match obj {
            NfListObject::Table(t) => {
                inet(&t.family)?;
                self.tables.entry(t.name.to_string()).or_default();
            }
            NfListObject::Set(s) => {
                inet(&s.family)?;
                let key = match &s.set_type {
                    SetTypeValue::Single(t) => vec![*t],
                    SetTypeValue::Concatenated(v) => v.to_vec(),
                };
                let fields = set_fields(&key)?;
                let interval = s
                    .flags
                    .as_ref()
                    .is_some_and(|f| f.contains(&SetFlag::Interval));
                let mut elems = Elems::default();
                for e in s.elem.iter().flat_map(|e| e.iter()) {
                    elems.elems.push(element(&fields, e, interval)?);
                }
                let table = self.table_mut(&s.table)?;
                if table.sets.contains_key(s.name.as_ref()) {
                    return Err(unsupported(format!("set {} added twice", s.name)));
                }
                table.sets.insert(
                    s.name.to_string(),
                    SetDef {
                        key,
                        interval,
                        elems,
                        data: None,
                    },
                );
            }
            NfListObject::Map(s) => {
                inet(&s.family)?;
                if !crate::lower::is_verdict_type(&s.map) {
                    return Err(unsupported(format!(
                        "map {} of data other than verdicts",
                        s.name
                    )));
                }
                let key = match &s.set_type {
                    SetTypeValue::Single(t) => vec![*t],
                    SetTypeValue::Concatenated(v) => v.to_vec(),
                };
                set_fields(&key)?;
                let interval = s
                    .flags
                    .as_ref()
                    .is_some_and(|f| f.contains(&SetFlag::Interval));
                let mut def = SetDef {
                    key,
                    interval,
                    elems: Elems::default(),
                    data: Some(Vec::new()),
                };
                for e in s.elem.iter().flat_map(|e| e.iter()) {
                    def.push(e)?;
                }
                let table = self.table_mut(&s.table)?;
                if table.sets.contains_key(s.name.as_ref()) {
                    return Err(unsupported(format!("set or map {} added twice", s.name)));
                }
                table.sets.insert(s.name.to_string(), def);
            }
            NfListObject::Element(e) => {
                inet(&e.family)?;
                let set = self.set_mut(&e.table, &e.name)?;
                for x in e.elem.iter() {
                    set.push(x)?;
                }
            }
            NfListObject::Chain(c) => {
                inet(&c.family)?;
                let base = match (&c.hook, &c._type) {
                    (None, None) => None,
                    (Some(h), Some(_)) => {
                        let dir = match h {
                            NfHook::Input => Some(Direction::Input),
                            NfHook::Output => Some(Direction::Output),
                            NfHook::Forward => None,
                            other => {
                                return Err(unsupported(format!("hook {}", json(other))));
                            }
                        };
                        let policy = match c.policy.as_ref().map(json).as_deref() {
                            None | Some("\"accept\"") => Verdict::Accept,
                            Some("\"drop\"") => Verdict::Drop,
                            Some(p) => return Err(unsupported(format!("chain policy {p}"))),
                        };
                        // The forward hook never sees local traffic: keep it out of the hooks.
                        dir.map(|d| (d, c.prio.unwrap_or(0), policy))
                    }
                    _ => return Err(unsupported(format!("chain {}", json(c)))),
                };
                let table = self.table_mut(&c.table)?;
                let entry = table.chains.entry(c.name.to_string()).or_insert(ChainDef {
                    base,
                    rules: Vec::new(),
                });
                if entry.base != base {
                    return Err(unsupported(format!("chain {} redefined", c.name)));
                }
            }
            NfListObject::Rule(r) => {
                inet(&r.family)?;
                if r.index.is_some() {
                    return Err(unsupported("rule with an index (insert position)"));
                }
                let stmts = r
                    .expr
                    .iter()
                    .map(compile_stmt)
                    .collect::<Result<Vec<_>, _>>()?;
                let has_limit = stmts.contains(&Stmt::Limit);
                let decides = stmts.iter().any(|s| {
                    matches!(
                        s,
                        Stmt::Verdict(_) | Stmt::Vmap { .. } | Stmt::VmapNamed { .. }
                    )
                });
                if has_limit && decides {
                    return Err(unsupported(format!(
                        "rule with a limit and a verdict (the outcome would depend on the rate): {}",
                        json(r)
                    )));
                }
                let table = self.table_mut(&r.table)?;
                let chain = table.chains.get_mut(r.chain.as_ref()).ok_or_else(|| {
                    unsupported(format!("rule for chain {} that does not exist", r.chain))
                })?;
                chain.rules.push(RuleDef {
                    stmts,
                    comment: r.comment.as_deref().map(String::from),
                });
            }
            NfListObject::MetainfoObject(_) => {}
            other => return Err(unsupported(format!("object {}", json(other)))),
        }
        Ok(())
    }

    fn table_mut(&mut self, name: &str) -> Result<&mut Table, NftError> {
        self.tables
            .get_mut(name)
            .ok_or_else(|| unsupported(format!("table inet {name} does not exist")))
    }

    /// The decision for the first packet of a new connection in `dir`
    /// ([`Packet::new_connection`]).
    ///
    /// ```
    /// let m = backend_nft::model::NftModel::default();
    /// use microseg_core::{ir::Direction, ports::Proto, semantics::{Connection, Verdict}};
    /// let c = Connection::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), Proto::Tcp(1));
    /// // No table: nothing filters.
    /// assert_eq!(m.decide(Direction::Input, &c).unwrap().verdict, Verdict::Accept);
    /// ```
    pub fn decide(&self, dir: Direction, c: &Connection) -> Result<ModelDecision, NftError> {
        self.evaluate(&Packet::new_connection(dir, c))
    }

    /// Runs a packet through every base chain of its hook (all tables, in
    /// priority order): the first drop or reject ends it; accepted by all
    /// (or by none that exists) is accepted.
    ///
    /// ```
    /// use backend_nft::model::{NftModel, Packet};
    /// use microseg_core::{ir::Direction, ports::Proto, semantics::{Connection, Verdict}};
    /// let c = Connection::new("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap(), Proto::Icmp);
    /// let mut p = Packet::new_connection(Direction::Input, &c);
    /// p.icmp_checksum = 0xbeef;
    /// assert_eq!(NftModel::default().evaluate(&p).unwrap().verdict, Verdict::Accept);
    /// ```
    pub fn evaluate(&self, pkt: &Packet) -> Result<ModelDecision, NftError> {
        let mut bases: Vec<(i32, &str, &str, &ChainDef)> = Vec::new();
        for (tname, t) in &self.tables {
            for (cname, c) in &t.chains {
                if let Some((dir, prio, _)) = c.base {
                    if dir == pkt.direction {
                        bases.push((prio, tname, cname, c));
                    }
                }
            }
        }
        bases.sort_by_key(|b| b.0);
        let mut last = ModelDecision {
            verdict: Verdict::Accept,
            table: None,
            chain: None,
            comment: None,
            logged: false,
            path: Vec::new(),
            rules: 0,
        };
        let mut logged = false;
        let mut rules = 0;
        for (_, tname, cname, chain) in bases {
            let table = &self.tables[tname];
            let mut d = Decider {
                table,
                pkt,
                logged: false,
                path: Vec::new(),
                rules: 0,
            };
            let outcome = d.run_base(cname, chain)?;
            logged |= d.logged;
            rules += d.rules;
            let (verdict, chain_name, comment) = outcome;
            last = ModelDecision {
                verdict,
                table: Some(tname.to_string()),
                chain: Some(chain_name),
                comment,
                logged,
                path: d.path,
                rules,
            };
            if verdict != Verdict::Accept {
                return Ok(last);
            }
        }
        last.logged = logged;
        Ok(last)
    }
}

fn inet(f: &nftables::types::NfFamily) -> Result<(), NftError> {
    match f {
        nftables::types::NfFamily::INet => Ok(()),
        other => Err(unsupported(format!("family {}", json(other)))),
    }
}

/// The fields a set type's values are read as (a representative field per type).
fn set_fields(key: &[SetType]) -> Result<Vec<Field>, NftError> {
    key.iter()
        .map(|t| {
            Ok(match t {
                SetType::Ipv4Addr => Field::Saddr4,
                SetType::Ipv6Addr => Field::Saddr6,
                SetType::InetService => Field::ThDport,
                SetType::InetProto => Field::L4proto,
                other => return Err(unsupported(format!("set type {}", json(other)))),
            })
        })
        .collect()
}

fn key_fields(e: &Expression) -> Result<Vec<Field>, NftError> {
    match e {
        Expression::Named(NamedExpression::Concat(v)) => v.iter().map(Field::of).collect(),
        other => Ok(vec![Field::of(other)?]),
    }
}

fn compile_stmt(s: &Statement) -> Result<Stmt, NftError> {
    Ok(match s {
        Statement::Match(m) => {
            let key = key_fields(&m.left)?;
            let negate = match m.op {
                Operator::EQ | Operator::IN => false,
                Operator::NEQ => true,
                other => return Err(unsupported(format!("operator {}", json(&other)))),
            };
            if let (
                &[Field::CtState],
                Expression::List(_) | Expression::Named(NamedExpression::Set(_)),
            ) = (key.as_slice(), &m.right)
            {
                let mut mask = 0u128;
                let mut add = |e: &Expression| -> Result<(), NftError> {
                    mask |= Field::CtState.parse(e)?;
                    Ok(())
                };
                match &m.right {
                    Expression::List(items) => items.iter().try_for_each(&mut add)?,
                    Expression::Named(NamedExpression::Set(items)) => {
                        for i in items {
                            match i {
                                SetItem::Element(e) => add(e)?,
                                other => {
                                    return Err(unsupported(format!("ct state {}", json(other))))
                                }
                            }
                        }
                    }
                    _ => unreachable!("matched above"),
                }
                if negate {
                    return Err(unsupported("ct state != list"));
                }
                return Ok(Stmt::Flags {
                    key: Field::CtState,
                    mask,
                });
            }
            let rhs = match &m.right {
                Expression::String(s) if s.starts_with('@') => Rhs::Named(s[1..].to_string()),
                Expression::Named(NamedExpression::Set(items)) => {
                    let mut elems = Elems::default();
                    for i in items {
                        match i {
                            SetItem::Element(e) => elems.elems.push(element(&key, e, true)?),
                            other => return Err(unsupported(format!("set item {}", json(other)))),
                        }
                    }
                    Rhs::Anon(elems)
                }
                other => Rhs::Anon(Elems {
                    elems: vec![element(&key, other, true)?],
                }),
            };
            Stmt::Match { key, negate, rhs }
        }
        Statement::Counter(_) => Stmt::Counter,
        Statement::Limit(l) if l.inv != Some(true) => Stmt::Limit,
        Statement::Log(_) => Stmt::Log,
        Statement::Accept(_) => Stmt::Verdict(Action::Accept),
        Statement::Drop(_) => Stmt::Verdict(Action::Drop),
        Statement::Reject(_) => Stmt::Verdict(Action::Reject),
        Statement::Continue(_) => Stmt::Verdict(Action::Continue),
        Statement::Return(_) => Stmt::Verdict(Action::Return),
        Statement::Jump(t) => Stmt::Verdict(Action::Jump(t.target.to_string())),
        Statement::Goto(t) => Stmt::Verdict(Action::Goto(t.target.to_string())),
        Statement::VerdictMap(v) => {
            let key = key_fields(&v.key)?;
            if let Expression::String(s) = &v.data {
                if let Some(map) = s.strip_prefix('@') {
                    return Ok(Stmt::VmapNamed {
                        key,
                        map: map.to_string(),
                    });
                }
            }
            let Expression::Named(NamedExpression::Set(items)) = &v.data else {
                return Err(unsupported(format!("vmap data {}", json(&v.data))));
            };
            let mut elems = Elems::default();
            let mut actions = Vec::with_capacity(items.len());
            for i in items {
                let (k, action) = match i {
                    SetItem::Mapping(k, d) => (k, Action::of_expr(d)?),
                    // `{"accept": null}` reads as a statement.
                    SetItem::MappingStatement(k, s) => match compile_stmt(s)? {
                        Stmt::Verdict(a) => (k, a),
                        _ => return Err(unsupported(format!("vmap item {}", json(i)))),
                    },
                    // `[key, verdict]` read back from JSON is a two-element list.
                    SetItem::Element(Expression::List(kv)) if kv.len() == 2 => {
                        (&kv[0], Action::of_expr(&kv[1])?)
                    }
                    SetItem::Element(_) => {
                        return Err(unsupported(format!("vmap item {}", json(i))))
                    }
                };
                elems.elems.push(element(&key, k, true)?);
                actions.push(action);
            }
            Stmt::Vmap {
                key,
                elems,
                actions,
            }
        }
        other => return Err(unsupported(format!("statement {}", json(other)))),
    })
}

/// A verdict map lookup: the action of the one element holding `k`.
fn vmap_lookup(elems: &Elems, actions: &[Action], k: &[u128]) -> Result<Flow, NftError> {
    let mut hits = elems.matching(k);
    Ok(match (hits.next(), hits.next()) {
        (None, _) => Flow::Break,
        (Some(i), None) => Flow::Done(actions[i].clone()),
        (Some(i), Some(j)) => {
            return Err(unsupported(format!(
                "vmap elements {i} and {j} overlap at key {k:?} (nft refuses overlapping intervals)"
            )))
        }
    })
}

struct Decider<'a> {
    table: &'a Table,
    pkt: &'a Packet,
    logged: bool,
    path: Vec<String>,
    rules: usize,
}

impl Decider<'_> {
    /// Runs a base chain: (verdict, deciding chain, deciding rule's comment).
    fn run_base(
        &mut self,
        name: &str,
        chain: &ChainDef,
    ) -> Result<(Verdict, String, Option<String>), NftError> {
        let mut stack: Vec<(String, usize)> = Vec::new();
        let mut current = (name.to_string(), 0usize);
        self.path.push(name.to_string());
        loop {
            let def = if current.0 == name {
                chain
            } else {
                self.table.chains.get(&current.0).ok_or_else(|| {
                    unsupported(format!("jump to chain {} that does not exist", current.0))
                })?
            };
            let Some(rule) = def.rules.get(current.1) else {
                // End of chain: return, or the base chain's policy.
                match stack.pop() {
                    Some(caller) => {
                        current = caller;
                        continue;
                    }
                    None => {
                        let policy = chain.base.map_or(Verdict::Accept, |b| b.2);
                        return Ok((policy, name.to_string(), None));
                    }
                }
            };
            let here = (current.0.clone(), current.1 + 1);
            let action = self.run_rule(rule)?;
            let decided = |v: Verdict| Ok((v, here.0.clone(), rule.comment.clone()));
            match action {
                None | Some(Action::Continue) => current = here,
                Some(Action::Accept) => return decided(Verdict::Accept),
                Some(Action::Drop) => return decided(Verdict::Drop),
                Some(Action::Reject) => return decided(Verdict::Reject),
                Some(Action::Return) => match stack.pop() {
                    Some(caller) => current = caller,
                    None => {
                        let policy = chain.base.map_or(Verdict::Accept, |b| b.2);
                        return Ok((policy, name.to_string(), None));
                    }
                },
                Some(Action::Jump(t)) => {
                    if stack.len() + 1 >= MAX_DEPTH {
                        return Err(unsupported("jumps nested deeper than nft allows"));
                    }
                    stack.push(here);
                    self.path.push(t.clone());
                    current = (t, 0);
                }
                Some(Action::Goto(t)) => {
                    if self.path.len() > 4096 {
                        return Err(unsupported("goto loop"));
                    }
                    self.path.push(t.clone());
                    current = (t, 0);
                }
            }
        }
    }

    /// Runs a rule's statements: `None` if it ends without a verdict.
    fn run_rule(&mut self, rule: &RuleDef) -> Result<Option<Action>, NftError> {
        self.rules += 1;
        for s in &rule.stmts {
            match self.run_stmt(s)? {
                Flow::Next => {}
                Flow::Break => return Ok(None),
                Flow::Done(a) => return Ok(Some(a)),
            }
        }
        Ok(None)
    }

    fn key(&self, fields: &[Field]) -> Option<Vec<u128>> {
        fields.iter().map(|&f| self.pkt.get(f)).collect()
    }

    fn run_stmt(&mut self, s: &Stmt) -> Result<Flow, NftError> {
        Ok(match s {
            Stmt::Match { key, negate, rhs } => {
                let Some(k) = self.key(key) else {
                    return Ok(Flow::Break);
                };
                let found = match rhs {
                    Rhs::Anon(e) => e.matching(&k).next().is_some(),
                    Rhs::Named(n) => {
                        let set = self
                            .table
                            .sets
                            .get(n)
                            .ok_or_else(|| unsupported(format!("no set @{n}")))?;
                        let want: Vec<Option<SetType>> = key.iter().map(|f| f.set_type()).collect();
                        if want != set.key.iter().map(|t| Some(*t)).collect::<Vec<_>>() {
                            return Err(unsupported(format!(
                                "key {key:?} looked up in set @{n} of type {:?}",
                                set.key
                            )));
                        }
                        if set.data.is_some() {
                            return Err(unsupported(format!("map @{n} used as a set")));
                        }
                        set.elems.matching(&k).next().is_some()
                    }
                };
                if found != *negate {
                    Flow::Next
                } else {
                    Flow::Break
                }
            }
            Stmt::Flags { key, mask } => match self.pkt.get(*key) {
                Some(v) if v & mask != 0 => Flow::Next,
                _ => Flow::Break,
            },
            Stmt::Counter | Stmt::Limit => Flow::Next,
            Stmt::Log => {
                self.logged = true;
                Flow::Next
            }
            Stmt::Verdict(a) => Flow::Done(a.clone()),
            Stmt::Vmap {
                key,
                elems,
                actions,
            } => {
                let Some(k) = self.key(key) else {
                    return Ok(Flow::Break);
                };
                vmap_lookup(elems, actions, &k)?
            }
            Stmt::VmapNamed { key, map } => {
                let Some(k) = self.key(key) else {
                    return Ok(Flow::Break);
                };
                let set = self
                    .table
                    .sets
                    .get(map)
                    .ok_or_else(|| unsupported(format!("no map @{map}")))?;
                let want: Vec<Option<SetType>> = key.iter().map(|f| f.set_type()).collect();
                if want != set.key.iter().map(|t| Some(*t)).collect::<Vec<_>>() {
                    return Err(unsupported(format!(
                        "key {key:?} looked up in map @{map} of type {:?}",
                        set.key
                    )));
                }
                let Some(actions) = &set.data else {
                    return Err(unsupported(format!("set @{map} used as a verdict map")));
                };
                vmap_lookup(&set.elems, actions, &k)?
            }
        })
    }
}
