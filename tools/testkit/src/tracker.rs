//! Reading an HTTP tracker's announce reply without a bencode parser: the tests and the
//! benchmarks ask opentracker which peers it lists.

/// The ports in a compact (`5:peers<len>:<6 bytes each>`) announce reply, or `None` if
/// the reply has no such list.
pub fn compact_peer_ports(body: &[u8]) -> Option<Vec<u16>> {
    let key = b"5:peers";
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    let rest = &body[start..];
    let colon = rest.iter().position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(&rest[..colon]).ok()?.parse().ok()?;
    let peers = rest.get(colon + 1..colon + 1 + len)?;
    Some(
        peers
            .chunks_exact(6)
            .map(|p| u16::from_be_bytes([p[4], p[5]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_compact_peers_and_rejects_short_replies() {
        let body = b"d8:intervali30e5:peers12:\x7f\0\0\x01\x1a\xe1\x7f\0\0\x01\x1a\xe2e";
        assert_eq!(compact_peer_ports(body), Some(vec![6881, 6882]));
        assert_eq!(compact_peer_ports(b"d5:peers0:e"), Some(vec![]));
        assert_eq!(compact_peer_ports(b"d5:peers12:\x7f\0e"), None);
        assert_eq!(compact_peer_ports(b"d14:failure reason3:bade"), None);
    }
}
