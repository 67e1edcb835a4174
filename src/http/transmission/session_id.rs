//! The `X-Transmission-Session-Id` token: Transmission's CSRF guard. A client must echo
//! the token it was given with a 409; a web page on another site cannot read it.

use std::io::Read;
use std::sync::OnceLock;

pub const HEADER: &str = "x-transmission-session-id";

/// This run's token: 48 hex digits from the kernel's random source, made once.
pub fn current() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let mut bytes = [0u8; 24];
        let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
        if random.is_err() {
            // No /dev/urandom: the hasher's per-process random keys are the fallback.
            use std::hash::{BuildHasher, Hasher};
            for chunk in bytes.chunks_mut(8) {
                let mut h = std::collections::hash_map::RandomState::new().build_hasher();
                h.write_u128(
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos()),
                );
                chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
            }
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    })
}

/// The request carries this run's token.
pub fn matches(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == current())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_stable_within_a_run_and_checked_exactly() {
        let id = current();
        assert_eq!(id.len(), 48);
        assert_eq!(id, current());
        let mut headers = axum::http::HeaderMap::new();
        assert!(!matches(&headers));
        headers.insert(HEADER, "stale".parse().unwrap());
        assert!(!matches(&headers));
        headers.insert(HEADER, id.parse().unwrap());
        assert!(matches(&headers));
    }
}
