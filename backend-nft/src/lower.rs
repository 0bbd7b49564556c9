//! IR → libnftables JSON commands, built with the `nftables` crate's schema types.
//!
//! Every rule builder carries a `// nft-syntax` comment with the rule it makes.

use crate::{NftError, CHAIN_FORWARD, CHAIN_INPUT, CHAIN_OUTPUT};
use microseg_core::addr::Family;
use microseg_core::ir::{HostRuleset, NamedSet, Origin, PacketMatch, ProtoMatch, Rule, RuleMatch};
use microseg_core::semantics::Verdict;
use microseg_core::{LogSpec, LogTarget, RateUnit};
use nftables::expr::{
    Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix, Range, SetItem, CT,
};
use nftables::schema::{self, NfCmd, NfListObject, NfObject, SetFlag, SetType, SetTypeValue};
use nftables::stmt::{
    self, Counter, Log, LogLevel, Match, Operator, Reject, RejectType, Statement,
};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};
use std::borrow::Cow;
use std::collections::HashSet;

/// The ICMPv6 types IPv6 needs to work (neighbour discovery, path MTU), as nft 1.0.6 names them.
pub(crate) const ICMPV6_INFRA: [&str; 5] = [
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "packet-too-big",
];

/// A base chain of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chain {
    Input,
    Output,
    Forward,
}

impl Chain {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Chain::Input => CHAIN_INPUT,
            Chain::Output => CHAIN_OUTPUT,
            Chain::Forward => CHAIN_FORWARD,
        }
    }

    fn hook(self) -> NfHook {
        match self {
            Chain::Input => NfHook::Input,
            Chain::Output => NfHook::Output,
            Chain::Forward => NfHook::Forward,
        }
    }
}

/// The whole transaction: table replacement, sets, chains, rules.
pub(crate) fn lower(rs: &HostRuleset) -> Result<Vec<NfObject<'static>>, NftError> {
    check_table_name(&rs.table)?;
    let lw = Lowerer {
        rs,
        log: effective_log(rs)?,
    };
    let mut out = table_commands(&rs.table);
    for set in rs.sets.values() {
        out.push(add(NfListObject::Set(Box::new(lw.set(set)?))));
    }
    for chain in [Chain::Input, Chain::Output, Chain::Forward] {
        out.push(add(NfListObject::Chain(lw.base_chain(chain))));
    }
    let none = Vec::new();
    for (chain, rules) in [
        (Chain::Input, &rs.input),
        (Chain::Output, &rs.output),
        (Chain::Forward, &none),
    ] {
        for rule in rules {
            for r in lw.rule(chain, rule)? {
                out.push(add(NfListObject::Rule(r)));
            }
        }
        for r in lw.chain_tail(chain)? {
            out.push(add(NfListObject::Rule(r)));
        }
    }
    Ok(out)
}

/// `add table` + `delete table` + `add table`: nft 1.0.6 has no `destroy`,
/// and add (a no-op if it exists) + delete + add, all in one transaction,
/// replaces the policy's table and nothing else.
pub(crate) fn table_commands(name: &str) -> Vec<NfObject<'static>> {
    let table = || schema::Table {
        family: NfFamily::INet,
        name: Cow::Owned(name.to_string()),
        handle: None,
    };
    vec![
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table()))),
        NfObject::CmdObject(NfCmd::Delete(NfListObject::Table(table()))),
        NfObject::CmdObject(NfCmd::Add(NfListObject::Table(table()))),
    ]
}

/// The data type `verdict` of a named verdict map. The `nftables` crate's
/// schema has no such [`SetType`]: an empty concatenation stands for it in
/// the artefact, and this crate's writers ([`crate::to_json`],
/// [`crate::to_nft_text`], [`crate::NftState::from_artefact`]) and model
/// write and read it as `verdict`.
pub(crate) fn verdict_type() -> SetTypeValue<'static> {
    SetTypeValue::Concatenated(Cow::Borrowed(&[]))
}

/// Whether a map's data type is [`verdict_type`].
pub(crate) fn is_verdict_type(t: &SetTypeValue<'_>) -> bool {
    matches!(t, SetTypeValue::Concatenated(v) if v.is_empty())
}

pub(crate) fn add(obj: NfListObject<'static>) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(obj))
}

pub(crate) fn check_table_name(name: &str) -> Result<(), NftError> {
    let ok_chars = name.chars().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || (i > 0 && (c.is_ascii_digit() || c == '-' || c == '_'))
    });
    if name.is_empty() || !ok_chars || crate::is_nft_keyword(name) {
        return Err(NftError::TableName { name: name.into() });
    }
    Ok(())
}

/// The log settings flagged rules use: the baseline's, or the core's
/// defaults when the baseline turned drop logging off.
pub(crate) fn effective_log(rs: &HostRuleset) -> Result<LogSpec, NftError> {
    let log = rs.log.clone().unwrap_or_else(|| LogSpec {
        prefix: rs.table.clone(),
        rate: 10,
        unit: RateUnit::Second,
        burst: 5,
        target: LogTarget::Kernel,
    });
    if let Some(c) = log
        .prefix
        .chars()
        .find(|&c| !(c.is_ascii_graphic() || c == ' ') || c == '"' || c == '\\' || c == '$')
    {
        // nft text has no escapes, and reads `$name` in a quoted prefix as a variable.
        return Err(NftError::LogPrefix {
            prefix: log.prefix.clone(),
            found: c,
        });
    }
    if let LogTarget::Level(l) = &log.target {
        log_level(l)?;
    }
    Ok(log)
}

fn log_level(level: &str) -> Result<LogLevel, NftError> {
    Ok(match level {
        "emerg" => LogLevel::Emerg,
        "alert" => LogLevel::Alert,
        "crit" => LogLevel::Crit,
        "err" => LogLevel::Err,
        "warn" => LogLevel::Warn,
        "notice" => LogLevel::Notice,
        "info" => LogLevel::Info,
        "debug" => LogLevel::Debug,
        "audit" => LogLevel::Audit,
        other => {
            return Err(NftError::LogLevel {
                level: other.into(),
            })
        }
    })
}

// ---- expression helpers ---------------------------------------------------

pub(crate) fn string(s: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(s.into()))
}

pub(crate) fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(protocol),
            field: Cow::Borrowed(field),
        },
    )))
}

pub(crate) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

pub(crate) fn match_eq(
    left: Expression<'static>,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match {
        left,
        right,
        op: Operator::EQ,
    })
}

pub(crate) fn counter() -> Statement<'static> {
    Statement::Counter(Counter::Anonymous(None))
}

/// An IPv4 address in dotted-quad text, without the formatting machinery
/// (sets of a large estate hold millions of addresses).
pub(crate) fn ipv4_text(x: u32) -> String {
    let mut s = String::with_capacity(15);
    for (i, octet) in x.to_be_bytes().into_iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        if octet >= 100 {
            s.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            s.push(char::from(b'0' + (octet / 10) % 10));
        }
        s.push(char::from(b'0' + octet % 10));
    }
    s
}

/// One address interval: the address, the prefix if it is exactly one CIDR, else a range.
pub(crate) fn interval(
    lo: u128,
    hi: u128,
    bits: u32,
    show: impl Fn(u128) -> String,
) -> Expression<'static> {
    if lo == hi {
        return string(show(lo));
    }
    let mask = hi - lo;
    if mask & mask.wrapping_add(1) == 0 && lo & mask == 0 {
        return Expression::Named(NamedExpression::Prefix(Prefix {
            addr: Box::new(string(show(lo))),
            len: bits - mask.count_ones(),
        }));
    }
    Expression::Range(Box::new(Range {
        range: [string(show(lo)), string(show(hi))],
    }))
}

/// `80`, `2500-3300` or `{ 80, 443, 2500-3300 }`.
fn ports(set: &microseg_core::interval::IntervalSet<u16>) -> Expression<'static> {
    let one = |&(lo, hi): &(u16, u16)| {
        if lo == hi {
            Expression::Number(u32::from(lo))
        } else {
            Expression::Range(Box::new(Range {
                range: [
                    Expression::Number(u32::from(lo)),
                    Expression::Number(u32::from(hi)),
                ],
            }))
        }
    };
    match set.ranges() {
        [single] => one(single),
        many => Expression::Named(NamedExpression::Set(
            many.iter().map(|r| SetItem::Element(one(r))).collect(),
        )),
    }
}

pub(crate) struct Lowerer<'a> {
    pub(crate) rs: &'a HostRuleset,
    pub(crate) log: LogSpec,
}

impl Lowerer<'_> {
    pub(crate) fn table(&self) -> Cow<'static, str> {
        Cow::Owned(self.rs.table.clone())
    }

    // nft-syntax: set web_v4 { type ipv4_addr; flags interval; elements = { 10.10.1.10-10.10.1.19 } }
    pub(crate) fn set(&self, set: &NamedSet) -> Result<schema::Set<'static>, NftError> {
        let elems: Vec<Expression<'static>> = match set.family {
            Family::V4 => set
                .addrs
                .ranges_v4()
                .map(|(a, b)| {
                    interval(
                        u128::from(u32::from(a)),
                        u128::from(u32::from(b)),
                        32,
                        |x| ipv4_text(x as u32),
                    )
                })
                .collect(),
            Family::V6 => set
                .addrs
                .ranges_v6()
                .map(|(a, b)| {
                    interval(u128::from(a), u128::from(b), 128, |x| {
                        crate::addr_text::ipv6_text(x)
                    })
                })
                .collect(),
        };
        Ok(schema::Set {
            family: NfFamily::INet,
            table: self.table(),
            name: Cow::Owned(set.name.clone()),
            handle: None,
            set_type: SetTypeValue::Single(match set.family {
                Family::V4 => SetType::Ipv4Addr,
                Family::V6 => SetType::Ipv6Addr,
            }),
            policy: None,
            flags: Some(HashSet::from([SetFlag::Interval])),
            elem: (!elems.is_empty()).then(|| Cow::Owned(elems)),
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        })
    }

    // nft-syntax: chain input { type filter hook input priority filter; policy drop; }
    pub(crate) fn base_chain(&self, chain: Chain) -> schema::Chain<'static> {
        schema::Chain {
            family: NfFamily::INet,
            table: self.table(),
            name: Cow::Borrowed(chain.name()),
            newname: None,
            handle: None,
            _type: Some(NfChainType::Filter),
            hook: Some(chain.hook()),
            prio: Some(0),
            dev: None,
            policy: Some(NfChainPolicy::Drop),
        }
    }

    fn rule_obj(
        &self,
        chain: Chain,
        expr: Vec<Statement<'static>>,
        comment: String,
    ) -> schema::Rule<'static> {
        self.rule_in(Cow::Borrowed(chain.name()), expr, Some(comment))
    }

    /// A rule of any chain (base or regular), with an optional comment.
    pub(crate) fn rule_in(
        &self,
        chain: Cow<'static, str>,
        expr: Vec<Statement<'static>>,
        comment: Option<String>,
    ) -> schema::Rule<'static> {
        schema::Rule {
            family: NfFamily::INet,
            table: self.table(),
            chain,
            expr: Cow::Owned(expr),
            handle: None,
            index: None,
            comment: comment.map(Cow::Owned),
        }
    }

    /// The rules for one IR rule: the log rule first when flagged, then the verdict rule.
    pub(crate) fn rule(
        &self,
        chain: Chain,
        rule: &Rule,
    ) -> Result<Vec<schema::Rule<'static>>, NftError> {
        let label = rule.origin.label();
        let m = self.match_stmts(chain, &rule.matches, &label)?;
        let mut out = Vec::with_capacity(2);
        if rule.log {
            // nft-syntax: <match> limit rate 10/second burst 5 packets log prefix "microseg web-to-app: " group 1
            let name = match &rule.origin {
                Origin::Flow { name, .. } => name.clone(),
                Origin::Baseline { what } => what.clone(),
            };
            let mut expr = m.clone();
            expr.push(self.limit());
            expr.push(self.log_stmt(format!("{} {name}: ", self.log.prefix))?);
            out.push(self.rule_obj(chain, expr, label.clone()));
        }
        // nft-syntax: <match> counter accept|drop|reject [with tcp reset]
        let tcp = matches!(
            &rule.matches,
            RuleMatch::Packet(PacketMatch {
                proto: ProtoMatch::Tcp(_),
                ..
            })
        );
        let mut expr = m;
        expr.push(counter());
        expr.push(verdict(rule.verdict, tcp));
        out.push(self.rule_obj(chain, expr, label));
        Ok(out)
    }

    fn match_stmts(
        &self,
        chain: Chain,
        m: &RuleMatch,
        label: &str,
    ) -> Result<Vec<Statement<'static>>, NftError> {
        Ok(match m {
            // nft-syntax: ct state established,related
            RuleMatch::Established => vec![Statement::Match(Match {
                left: Expression::Named(NamedExpression::CT(CT {
                    key: Cow::Borrowed("state"),
                    family: None,
                    dir: None,
                })),
                right: Expression::List(vec![string("established"), string("related")]),
                op: Operator::IN,
            })],
            // nft-syntax: iif "lo" (input) / oif "lo" (output)
            RuleMatch::Loopback => {
                let key = match chain {
                    Chain::Output => MetaKey::Oif,
                    Chain::Input | Chain::Forward => MetaKey::Iif,
                };
                vec![match_eq(meta(key), string("lo"))]
            }
            // nft-syntax: icmpv6 type { nd-router-solicit, …, packet-too-big }
            // (in inet, nft adds the dependencies `meta nfproto ipv6 meta l4proto
            // ipv6-icmp` itself, and lists the rule back exactly like this).
            RuleMatch::Icmpv6Infra => vec![match_eq(
                payload("icmpv6", "type"),
                Expression::Named(NamedExpression::Set(
                    ICMPV6_INFRA
                        .iter()
                        .map(|t| SetItem::Element(string(*t)))
                        .collect(),
                )),
            )],
            RuleMatch::Packet(p) => self.packet(p, label)?,
        })
    }

    // nft-syntax: [meta nfproto ipv4] [ip saddr @a_v4] [ip daddr @b_v4] tcp dport { 80, 443 }
    // nft-syntax: [ip saddr @a_v4] meta l4proto icmp [meta nfproto ipv4]
    fn packet(&self, p: &PacketMatch, label: &str) -> Result<Vec<Statement<'static>>, NftError> {
        let family = p.family.or(p.proto.family());
        let mut out = Vec::new();
        let mut implied = false;
        for (name, field) in [(&p.src, "saddr"), (&p.dst, "daddr")] {
            let Some(name) = name else { continue };
            let set = self.rs.sets.get(name).ok_or_else(|| NftError::UnknownSet {
                set: name.clone(),
                rule: label.into(),
            })?;
            if family.is_some_and(|f| f != set.family) {
                return Err(NftError::SetFamily {
                    set: name.clone(),
                    rule: label.into(),
                });
            }
            let proto = match set.family {
                Family::V4 => "ip",
                Family::V6 => "ip6",
            };
            out.push(match_eq(payload(proto, field), string(format!("@{name}"))));
            implied = true;
        }
        let nfproto = match (family, implied) {
            (Some(Family::V4), false) => Some(match_eq(meta(MetaKey::Nfproto), string("ipv4"))),
            (Some(Family::V6), false) => Some(match_eq(meta(MetaKey::Nfproto), string("ipv6"))),
            _ => None,
        };
        let icmp = matches!(p.proto, ProtoMatch::Icmp | ProtoMatch::Icmpv6);
        if let (Some(m), false) = (&nfproto, icmp) {
            out.insert(0, m.clone());
        }
        match &p.proto {
            ProtoMatch::Tcp(s) | ProtoMatch::Udp(s) if s.is_empty() => {
                return Err(NftError::EmptyPorts { rule: label.into() })
            }
            ProtoMatch::Tcp(s) => out.push(match_eq(payload("tcp", "dport"), ports(s))),
            ProtoMatch::Udp(s) => out.push(match_eq(payload("udp", "dport"), ports(s))),
            ProtoMatch::Icmp => out.push(match_eq(meta(MetaKey::L4proto), string("icmp"))),
            ProtoMatch::Icmpv6 => out.push(match_eq(meta(MetaKey::L4proto), string("ipv6-icmp"))),
        }
        // ICMP: the family match goes after `meta l4proto`. nft 1.0.6 lists
        // `meta nfproto ipv4 meta l4proto icmp` as `meta l4proto icmp` (it takes
        // the family match for a dependency it may elide), so a listing loaded
        // back would lose it; in this order it is listed, and restored, as is.
        if let (Some(m), true) = (nfproto, icmp) {
            out.push(m);
        }
        Ok(out)
    }

    pub(crate) fn limit(&self) -> Statement<'static> {
        Statement::Limit(stmt::Limit {
            rate: self.log.rate,
            rate_unit: None,
            per: Some(Cow::Borrowed(self.log.unit.as_str())),
            burst: Some(self.log.burst),
            burst_unit: None,
            inv: None,
        })
    }

    pub(crate) fn log_stmt(&self, prefix: String) -> Result<Statement<'static>, NftError> {
        let mut log = Log::new(None);
        match &self.log.target {
            LogTarget::Kernel => log.prefix = Some(Cow::Owned(prefix)),
            LogTarget::Group(g) => {
                log.prefix = Some(Cow::Owned(prefix));
                log.group = Some(u32::from(*g));
            }
            LogTarget::Level(l) => {
                let level = log_level(l)?;
                // nft: "log level audit doesn't support any further options".
                if level != LogLevel::Audit {
                    log.prefix = Some(Cow::Owned(prefix));
                }
                log.level = Some(level);
            }
        }
        Ok(Statement::Log(Some(log)))
    }

    /// The end of a chain: drop logging (if on), then the counted default verdict.
    pub(crate) fn chain_tail(&self, chain: Chain) -> Result<Vec<schema::Rule<'static>>, NftError> {
        let mut out = Vec::new();
        if self.rs.log.is_some() {
            // nft-syntax: limit rate 10/second burst 5 packets log prefix "microseg input drop: " group 1
            let prefix = format!("{} {} drop: ", self.log.prefix, chain.name());
            out.push(self.rule_obj(
                chain,
                vec![self.limit(), self.log_stmt(prefix)?],
                "baseline:log".into(),
            ));
        }
        let label = || String::from("baseline:default");
        match self.rs.default {
            Verdict::Reject => {
                // nft-syntax: meta l4proto tcp counter reject with tcp reset
                out.push(self.rule_obj(
                    chain,
                    vec![
                        match_eq(meta(MetaKey::L4proto), string("tcp")),
                        counter(),
                        verdict(Verdict::Reject, true),
                    ],
                    label(),
                ));
                // nft-syntax: counter reject
                out.push(self.rule_obj(
                    chain,
                    vec![counter(), verdict(Verdict::Reject, false)],
                    label(),
                ));
            }
            // nft-syntax: counter drop
            v => out.push(self.rule_obj(chain, vec![counter(), verdict(v, false)], label())),
        }
        Ok(out)
    }
}

/// `accept`, `drop`, `reject with tcp reset` (TCP rules) or `reject` (icmpx port-unreachable in inet).
pub(crate) fn verdict(v: Verdict, tcp: bool) -> Statement<'static> {
    match v {
        Verdict::Accept => Statement::Accept(None),
        Verdict::Drop => Statement::Drop(None),
        Verdict::Reject if tcp => {
            Statement::Reject(Some(Reject::new(Some(RejectType::TCPReset), None)))
        }
        Verdict::Reject => Statement::Reject(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_become_addresses_prefixes_or_ranges() {
        let v4 = |x: u128| std::net::Ipv4Addr::from(x as u32).to_string();
        let j = |e: Expression| serde_json::to_string(&e).unwrap();
        assert_eq!(j(interval(10, 10, 32, v4)), r#""0.0.0.10""#);
        assert_eq!(
            j(interval(0, 255, 32, v4)),
            r#"{"prefix":{"addr":"0.0.0.0","len":24}}"#
        );
        assert_eq!(
            j(interval(0, u32::MAX.into(), 32, v4)),
            r#"{"prefix":{"addr":"0.0.0.0","len":0}}"#
        );
        assert_eq!(
            j(interval(1, 256, 32, v4)),
            r#"{"range":["0.0.0.1","0.0.1.0"]}"#
        );
        assert_eq!(
            j(interval(2, 3, 32, v4)),
            r#"{"prefix":{"addr":"0.0.0.2","len":31}}"#
        );
        let v6 = |x: u128| std::net::Ipv6Addr::from(x).to_string();
        assert_eq!(
            j(interval(0, u128::MAX, 128, v6)),
            r#"{"prefix":{"addr":"::","len":0}}"#
        );
    }

    #[test]
    fn ipv4_text_is_dotted_quad() {
        for x in [
            0u32,
            1,
            9,
            10,
            99,
            100,
            255,
            0x0a00_0a0b,
            0xc0a8_6401,
            u32::MAX,
            0x6463_0a01,
        ] {
            assert_eq!(ipv4_text(x), std::net::Ipv4Addr::from(x).to_string());
        }
    }

    #[test]
    fn table_names() {
        assert!(check_table_name("microseg").is_ok());
        assert!(check_table_name("ms-1_x").is_ok());
        for bad in ["drop", "ip", "", "1x", "a b", "a\"b"] {
            assert!(
                matches!(check_table_name(bad), Err(NftError::TableName { .. })),
                "{bad}"
            );
        }
    }
}
