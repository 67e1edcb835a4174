//! A client's name from its peer id, for peer lists: the Azureus-style prefix
//! (`-TR3000-`: two letters and four version characters) most clients use, and aria2's
//! `A2-1-37-0-`. Anything else is "unknown"; a peer id is the peer's claim, never checked.

/// The names of the two-letter codes seen in the swarms we test with, and the common ones.
const CODES: &[(&[u8; 2], &str)] = &[
    (b"CU", "ccbt-uring"),
    (b"TR", "Transmission"),
    (b"qB", "qBittorrent"),
    (b"LT", "libtorrent"),
    (b"lt", "rTorrent"),
    (b"UT", "µTorrent"),
    (b"DE", "Deluge"),
    (b"AZ", "Vuze"),
    (b"BI", "BiglyBT"),
    (b"RB", "rqbit"),
    (b"WW", "WebTorrent"),
];

/// "Transmission 3.00", "qBittorrent 4.5.2", "aria2 1.37.0", or "unknown".
pub fn client_name(peer_id: &[u8; 20]) -> String {
    if peer_id[0] == b'-'
        && peer_id[7] == b'-'
        && peer_id[1..7].iter().all(u8::is_ascii_alphanumeric)
    {
        let code = [peer_id[1], peer_id[2]];
        let version = &peer_id[3..7];
        let name = CODES.iter().find(|(c, _)| **c == code).map_or_else(
            || String::from_utf8_lossy(&code).into_owned(),
            |(_, n)| n.to_string(),
        );
        let version = match &code {
            // Transmission: major digit, then two minor digits ("3000" = 3.00).
            b"TR" => format!(
                "{}.{}",
                version[0] as char,
                String::from_utf8_lossy(&version[1..3])
            ),
            _ => version
                .iter()
                .map(|&v| match v {
                    b'0'..=b'9' => (v - b'0').to_string(),
                    b'A'..=b'Z' => (v - b'A' + 10).to_string(),
                    b'a'..=b'z' => (v - b'a' + 36).to_string(),
                    _ => "?".into(),
                })
                .collect::<Vec<_>>()
                .join(".")
                .trim_end_matches(".0")
                .to_string(),
        };
        return format!("{name} {version}");
    }
    if let Some(rest) = peer_id.strip_prefix(b"A2-") {
        let version: Vec<&[u8]> = rest.split(|&b| b == b'-').take(3).collect();
        if version.len() == 3
            && version
                .iter()
                .all(|p| !p.is_empty() && p.iter().all(u8::is_ascii_digit))
        {
            let v: Vec<String> = version
                .iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect();
            return format!("aria2 {}", v.join("."));
        }
    }
    "unknown".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(prefix: &[u8]) -> [u8; 20] {
        let mut id = [b'x'; 20];
        id[..prefix.len()].copy_from_slice(prefix);
        id
    }

    #[test]
    fn names_the_clients_seen_in_swarms() {
        assert_eq!(client_name(&id(b"-TR3000-")), "Transmission 3.00");
        assert_eq!(client_name(&id(b"-qB4520-")), "qBittorrent 4.5.2");
        assert_eq!(client_name(&id(b"-LT2080-")), "libtorrent 2.0.8");
        assert_eq!(client_name(&id(b"-CU0100-")), "ccbt-uring 0.1");
        assert_eq!(client_name(&id(b"A2-1-37-0-")), "aria2 1.37.0");
        assert_eq!(client_name(&id(b"-ZZ1000-")), "ZZ 1");
        assert_eq!(client_name(&[0xff; 20]), "unknown");
        assert_eq!(client_name(&id(b"-T\x00300-")), "unknown");
    }
}
