//! Address text for the JSON document without the formatting machinery:
//! the sets of a large estate hold millions of addresses, and
//! `Ipv6Addr::to_string` (through `core::fmt`, growing its string as it
//! writes) costs several times the rest of an element's rendering.

/// An IPv6 address exactly as `std::net::Ipv6Addr`'s `Display` writes it
/// (RFC 5952: lowercase hex, the first longest run of two or more zero
/// groups as `::`, IPv4-mapped addresses as `::ffff:a.b.c.d`), in a string
/// of exactly its length.
pub(crate) fn ipv6_text(x: u128) -> String {
    let mut t = Text {
        buf: [0; 39],
        len: 0,
    };
    t.ipv6(x);
    std::str::from_utf8(&t.buf[..t.len])
        .expect("ASCII hex digits, dots and colons")
        .to_string()
}

/// An address's text on the stack (39 bytes: eight groups of four digits).
struct Text {
    buf: [u8; 39],
    len: usize,
}

impl Text {
    fn put(&mut self, b: u8) {
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// A group in lowercase hex without leading zeros.
    fn group(&mut self, g: u16) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let digits = (16 - g.leading_zeros()).div_ceil(4).max(1);
        for i in (0..digits).rev() {
            self.put(HEX[usize::from((g >> (4 * i)) & 0xf)]);
        }
    }

    /// Groups separated by colons.
    fn groups(&mut self, gs: &[u16]) {
        for (i, &g) in gs.iter().enumerate() {
            if i > 0 {
                self.put(b':');
            }
            self.group(g);
        }
    }

    fn ipv6(&mut self, x: u128) {
        if x >> 32 == 0xffff {
            // IPv4-mapped: `::ffff:` and the dotted quad.
            for b in *b"::ffff:" {
                self.put(b);
            }
            for (i, octet) in (x as u32).to_be_bytes().into_iter().enumerate() {
                if i > 0 {
                    self.put(b'.');
                }
                if octet >= 100 {
                    self.put(b'0' + octet / 100);
                }
                if octet >= 10 {
                    self.put(b'0' + (octet / 10) % 10);
                }
                self.put(b'0' + octet % 10);
            }
            return;
        }
        let gs: [u16; 8] = std::array::from_fn(|i| (x >> (112 - 16 * i)) as u16);
        // The first longest run of zero groups; compressed if two or more long.
        let (mut best, mut best_len, mut cur, mut cur_len) = (0, 0, 0, 0);
        for (i, &g) in gs.iter().enumerate() {
            if g == 0 {
                if cur_len == 0 {
                    cur = i;
                }
                cur_len += 1;
                if cur_len > best_len {
                    (best, best_len) = (cur, cur_len);
                }
            } else {
                cur_len = 0;
            }
        }
        if best_len > 1 {
            self.groups(&gs[..best]);
            self.put(b':');
            self.put(b':');
            self.groups(&gs[best + best_len..]);
        } else {
            self.groups(&gs);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    fn std_text(x: u128) -> String {
        Ipv6Addr::from(x).to_string()
    }

    #[test]
    fn every_zero_group_pattern_matches_std() {
        // Every choice of zero and non-zero groups, with groups of 1 to 4 digits.
        for pattern in 0u32..256 {
            for fill in [0x1u16, 0xa, 0x10, 0xfff, 0x1000, 0xffff, 0xdb8, 0x2001] {
                let mut x = 0u128;
                for i in 0..8 {
                    let s = if pattern >> i & 1 == 1 { fill } else { 0 };
                    x = (x << 16) | u128::from(s);
                }
                assert_eq!(ipv6_text(x), std_text(x), "{x:#x}");
            }
        }
    }

    #[test]
    fn special_addresses_match_std() {
        let mapped = 0xffff_u128 << 32;
        for x in [
            0,
            1,
            u128::MAX,
            mapped,
            mapped | 0x0a00_0001,
            mapped | 0xffff_ffff,
            mapped | 0x6463_0a01,
            mapped - 1,
            mapped + (1u128 << 32),
            0x0a00_0001,             // IPv4-compatible: written in hex
            0xfffe_0a00_0001,        // not mapped
            0x1_0000_ffff_0a00_0001, // not mapped (a non-zero group above)
            0x2001_0db8_0000_0000_0000_0000_0000_0001,
            0x2001_0db8_0000_0001_0000_0000_0000_0001,
            0x2001_0000_0000_0001_0000_0000_0000_0000,
            0xfe80_0000_0000_0000_0000_0000_0000_0000,
        ] {
            assert_eq!(ipv6_text(x), std_text(x), "{x:#x}");
        }
    }

    #[test]
    fn random_addresses_match_std() {
        let mut s = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        };
        for _ in 0..100_000 {
            let (a, b) = (u128::from(next()), u128::from(next()));
            // Random bits, with random groups cleared so that zero runs occur.
            let mask = next();
            let mut x = (a << 64) | b;
            for i in 0..8 {
                if mask >> (i * 3) & 3 != 0 {
                    x &= !(0xffffu128 << (16 * i));
                }
            }
            assert_eq!(ipv6_text(x), std_text(x), "{x:#x}");
            let mapped = (0xffff_u128 << 32) | (x & 0xffff_ffff);
            assert_eq!(ipv6_text(mapped), std_text(mapped), "{mapped:#x}");
        }
    }
}
