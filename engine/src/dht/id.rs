//! 160-bit DHT ids, XOR distance, and BEP 42's id rule (an id whose first 21 bits are bound
//! to the node's IPv4 address through CRC32C, so one address cannot pick ids at will).

use std::fmt;
use std::net::Ipv4Addr;

use crate::hash::Sha1Digest;

/// A node id or a lookup target (an info hash is a target too): 20 bytes compared as a
/// big-endian 160-bit number.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; 20]);

impl NodeId {
    pub const LEN: usize = 20;

    /// The XOR distance to `other`; smaller compares closer.
    pub fn distance(&self, other: &NodeId) -> [u8; 20] {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = self.0[i] ^ other.0[i];
        }
        d
    }

    /// How many leading bits `self` and `other` share: 160 when equal. This is the bucket
    /// index of `other` in a routing table owned by `self`.
    pub fn common_prefix_bits(&self, other: &NodeId) -> usize {
        for (i, (a, b)) in self.0.iter().zip(other.0.iter()).enumerate() {
            let x = a ^ b;
            if x != 0 {
                return i * 8 + x.leading_zeros() as usize;
            }
        }
        160
    }

    /// A copy of `self` that keeps its first `bits` bits and takes the rest from `random`,
    /// with bit `bits` flipped so the result shares exactly `bits` bits with `self` (for
    /// `bits < 160`). Used to pick a refresh target inside one bucket.
    pub fn with_prefix_of(&self, bits: usize, random: &NodeId) -> NodeId {
        if bits >= 160 {
            return *self;
        }
        let mut out = random.0;
        for (i, o) in out.iter_mut().enumerate() {
            let start = i * 8;
            if start + 8 <= bits {
                *o = self.0[i];
            } else if start < bits {
                let keep = 0xFFu8 << (8 - (bits - start));
                *o = (self.0[i] & keep) | (*o & !keep);
            }
        }
        let (byte, bit) = (bits / 8, 7 - bits % 8);
        let mine = self.0[byte] & (1 << bit);
        out[byte] = (out[byte] & !(1 << bit)) | (mine ^ (1 << bit));
        NodeId(out)
    }

    /// An id for a node at `ip` per BEP 42: the first 21 bits from CRC32C of the masked
    /// address and `random`'s last byte, the rest from `random`.
    pub fn bep42(ip: Ipv4Addr, random: &NodeId) -> NodeId {
        let r = random.0[19];
        let crc = bep42_crc(ip, r);
        let mut id = random.0;
        id[0] = (crc >> 24) as u8;
        id[1] = (crc >> 16) as u8;
        id[2] = ((crc >> 8) as u8 & 0xF8) | (id[2] & 0x07);
        NodeId(id)
    }

    /// True if this id is the BEP 42 id of `ip`, or if `ip` is one BEP 42 exempts (loopback,
    /// private, link-local: addresses that say nothing about who is behind them).
    pub fn is_valid_for(&self, ip: Ipv4Addr) -> bool {
        if bep42_exempt(ip) {
            return true;
        }
        let crc = bep42_crc(ip, self.0[19]);
        self.0[0] == (crc >> 24) as u8
            && self.0[1] == (crc >> 16) as u8
            && self.0[2] & 0xF8 == (crc >> 8) as u8 & 0xF8
    }
}

impl From<Sha1Digest> for NodeId {
    fn from(d: Sha1Digest) -> Self {
        NodeId(d.0)
    }
}

impl From<NodeId> for Sha1Digest {
    fn from(id: NodeId) -> Self {
        Sha1Digest(id.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", data_encoding::HEXLOWER.encode(&self.0))
    }
}

/// Addresses BEP 42 does not apply to.
pub fn bep42_exempt(ip: Ipv4Addr) -> bool {
    ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified()
}

/// BEP 42: `crc32c((ip & 0x030f3fff) | (r << 29))` over the four big-endian bytes.
fn bep42_crc(ip: Ipv4Addr, r: u8) -> u32 {
    let masked = (u32::from(ip) & 0x030F_3FFF) | (u32::from(r & 0x07) << 29);
    crc32c(&masked.to_be_bytes())
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), bitwise: BEP 42 hashes four bytes
/// per id check, so a table would buy nothing.
pub fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0x82F6_3B78 & mask);
        }
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex_id(s: &str) -> NodeId {
        let v = data_encoding::HEXLOWER.decode(s.as_bytes()).unwrap();
        NodeId(v.try_into().unwrap())
    }

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
    }

    /// The example ids of BEP 42's table: each verifies for its address and not another's,
    /// and generating from the same random part gives the same 21-bit prefix.
    #[test]
    fn bep42_examples_verify_and_regenerate() {
        let cases = [
            ("124.31.75.21", "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
            ("21.75.31.124", "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
            ("65.23.51.170", "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
            ("84.124.73.14", "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
            ("43.213.53.83", "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
        ];
        for (ip, id) in cases {
            let ip: Ipv4Addr = ip.parse().unwrap();
            let id = hex_id(id);
            assert!(id.is_valid_for(ip), "{ip} {id:?}");
            assert!(!id.is_valid_for(Ipv4Addr::new(1, 2, 3, 4)), "{ip}");
            let again = NodeId::bep42(ip, &id);
            assert_eq!(again, id, "{ip}");
        }
    }

    #[test]
    fn private_and_loopback_are_exempt() {
        let id = NodeId([0xAB; 20]);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "172.16.0.9",
            "169.254.0.1",
        ] {
            assert!(id.is_valid_for(ip.parse().unwrap()), "{ip}");
        }
        assert!(!id.is_valid_for(Ipv4Addr::new(8, 8, 8, 8)));
    }

    #[test]
    fn prefix_bits_and_bucket_targets() {
        let a = NodeId([0; 20]);
        let mut b = NodeId([0; 20]);
        assert_eq!(a.common_prefix_bits(&b), 160);
        b.0[0] = 0x80;
        assert_eq!(a.common_prefix_bits(&b), 0);
        b.0 = [0; 20];
        b.0[2] = 0x01;
        assert_eq!(a.common_prefix_bits(&b), 23);
        let random = NodeId([0x5A; 20]);
        for bits in [0, 1, 7, 8, 9, 100, 159] {
            let t = a.with_prefix_of(bits, &random);
            assert_eq!(a.common_prefix_bits(&t), bits, "{bits}");
        }
    }
}
