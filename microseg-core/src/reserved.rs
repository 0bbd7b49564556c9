//! Words the nft text parser reads as keywords wherever a table name may stand.
//!
//! ```
//! assert!(microseg_core::reserved::is_nft_keyword("drop"));
//! assert!(!microseg_core::reserved::is_nft_keyword("microseg"));
//! ```
//!
//! nft has no way to quote an identifier (`table inet "drop"` is a syntax
//! error too), so a table named like one of these words can be created
//! through JSON but never written, listed or deleted with the `nft` command
//! line. `check` refuses such table names, and the nft renderer does too.
//!
//! The list is every word that nft 1.0.6 rejects in `table inet WORD`
//! (probed with `nft -c`), plus the words newer nft releases made keywords
//! in every scanner state (`destroy`, `last`, `gre`, `gretap`, `vxlan`,
//! `vni`, `geneve`, `tunnel`), so a policy keeps working after an upgrade.

/// Keywords of nft 1.0.6 in table-name position, sorted.
const NFT_1_0_6: &[&str] = &[
    "accept",
    "add",
    "ah",
    "all",
    "and",
    "arp",
    "auto-merge",
    "bridge",
    "cgroup",
    "chain",
    "comment",
    "comp",
    "constant",
    "continue",
    "counter",
    "cpu",
    "create",
    "ct",
    "day",
    "dccp",
    "define",
    "delete",
    "describe",
    "device",
    "devices",
    "dnat",
    "drop",
    "dst",
    "dup",
    "dynamic",
    "ecn",
    "element",
    "elements",
    "eq",
    "esp",
    "ether",
    "exists",
    "expires",
    "export",
    "exthdr",
    "fib",
    "flags",
    "flow",
    "flowtable",
    "flush",
    "frag",
    "fwd",
    "gc-interval",
    "ge",
    "get",
    "goto",
    "gt",
    "handle",
    "hbh",
    "hook",
    "hour",
    "ibriport",
    "ibrname",
    "icmp",
    "icmpv6",
    "igmp",
    "iif",
    "iifgroup",
    "iifname",
    "iiftype",
    "import",
    "include",
    "index",
    "inet",
    "insert",
    "interval",
    "ip",
    "ip6",
    "ipsec",
    "jhash",
    "jump",
    "le",
    "limit",
    "list",
    "log",
    "lshift",
    "lt",
    "map",
    "mark",
    "masquerade",
    "meta",
    "meter",
    "mh",
    "missing",
    "monitor",
    "ne",
    "netdev",
    "nftrace",
    "not",
    "notrack",
    "numgen",
    "obriport",
    "obrname",
    "offload",
    "oif",
    "oifgroup",
    "oifname",
    "oiftype",
    "or",
    "osf",
    "pkttype",
    "policy",
    "position",
    "priority",
    "queue",
    "quota",
    "random",
    "redefine",
    "redirect",
    "reject",
    "rename",
    "replace",
    "reset",
    "return",
    "rshift",
    "rt",
    "rt0",
    "rt2",
    "rtclassid",
    "rule",
    "ruleset",
    "sctp",
    "secmark",
    "set",
    "size",
    "skgid",
    "skuid",
    "snat",
    "socket",
    "srh",
    "symhash",
    "synproxy",
    "table",
    "tcp",
    "th",
    "time",
    "timeout",
    "tproxy",
    "type",
    "typeof",
    "udp",
    "udplite",
    "undefine",
    "update",
    "vlan",
    "vmap",
    "xor",
    "xt",
];

/// Words that later nft releases made keywords in every scanner state, sorted.
const NEWER: &[&str] = &[
    "destroy", "geneve", "gre", "gretap", "last", "tunnel", "vni", "vxlan",
];

/// The words nft 1.0.6 itself rejects (the integration test probes them).
///
/// ```
/// assert!(microseg_core::reserved::nft_1_0_6().contains(&"counter"));
/// ```
pub fn nft_1_0_6() -> &'static [&'static str] {
    NFT_1_0_6
}

/// True if `name` cannot be written as a table name in nft text.
///
/// ```
/// use microseg_core::reserved::is_nft_keyword;
/// assert!(is_nft_keyword("ip") && is_nft_keyword("destroy"));
/// assert!(!is_nft_keyword("filter") && !is_nft_keyword("msdual"));
/// ```
pub fn is_nft_keyword(name: &str) -> bool {
    NFT_1_0_6.binary_search(&name).is_ok() || NEWER.binary_search(&name).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_sorted_for_binary_search() {
        for list in [NFT_1_0_6, NEWER] {
            assert!(list.windows(2).all(|w| w[0] < w[1]), "{list:?}");
        }
    }
}
