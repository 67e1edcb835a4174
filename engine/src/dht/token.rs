//! Announce tokens (BEP 5): a `get_peers` answer carries a token that the asker must send
//! back in `announce_peer`, proving it can receive packets at the address it claims.
//!
//! A token is the first 8 bytes of SHA-1(secret ‖ requester's IPv4 address). Two secrets
//! are kept; the current one rotates every [`ROTATE_EVERY`], and tokens made with the
//! current or the previous secret are accepted, so a token lives 5 to 10 minutes. Nothing
//! is stored per requester.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::hash::Sha1;
use crate::rng::SplitMix64;

/// How often the secret rotates.
pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);

/// Token length on the wire.
pub const TOKEN_LEN: usize = 8;

#[derive(Debug, Clone)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated_at: Duration,
    rng: SplitMix64,
}

impl Tokens {
    pub fn new(seed: u64, now: Duration) -> Tokens {
        let mut rng = SplitMix64::new(seed);
        let current = secret(&mut rng);
        let previous = secret(&mut rng);
        Tokens {
            current,
            previous,
            rotated_at: now,
            rng,
        }
    }

    /// Rotates as many times as the time since the last rotation calls for (at most twice:
    /// after that both secrets are fresh anyway).
    pub fn rotate_if_due(&mut self, now: Duration) {
        let mut rotations = 0;
        while now >= self.rotated_at + ROTATE_EVERY && rotations < 2 {
            self.previous = self.current;
            self.current = secret(&mut self.rng);
            self.rotated_at += ROTATE_EVERY;
            rotations += 1;
        }
        if now >= self.rotated_at + ROTATE_EVERY {
            self.rotated_at = now;
        }
    }

    /// When the next rotation is due.
    pub fn next_rotation(&self) -> Duration {
        self.rotated_at + ROTATE_EVERY
    }

    /// The token for `ip` now.
    pub fn issue(&mut self, now: Duration, ip: Ipv4Addr) -> [u8; TOKEN_LEN] {
        self.rotate_if_due(now);
        make(&self.current, ip)
    }

    /// True if `token` was issued to `ip` under the current or the previous secret.
    pub fn accepts(&mut self, now: Duration, ip: Ipv4Addr, token: &[u8]) -> bool {
        self.rotate_if_due(now);
        token == make(&self.current, ip) || token == make(&self.previous, ip)
    }
}

fn secret(rng: &mut SplitMix64) -> [u8; 16] {
    let mut s = [0u8; 16];
    s[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
    s[8..].copy_from_slice(&rng.next_u64().to_le_bytes());
    s
}

fn make(secret: &[u8; 16], ip: Ipv4Addr) -> [u8; TOKEN_LEN] {
    let mut h = Sha1::new();
    h.update(secret);
    h.update(&ip.octets());
    let d = h.finish();
    let mut t = [0u8; TOKEN_LEN];
    t.copy_from_slice(&d.0[..TOKEN_LEN]);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Ipv4Addr = Ipv4Addr::new(1, 2, 3, 4);
    const B: Ipv4Addr = Ipv4Addr::new(1, 2, 3, 5);

    fn s(secs: u64) -> Duration {
        Duration::from_secs(secs)
    }

    #[test]
    fn token_is_bound_to_the_address() {
        let mut t = Tokens::new(1, s(0));
        let tok = t.issue(s(0), A);
        assert!(t.accepts(s(1), A, &tok));
        assert!(!t.accepts(s(1), B, &tok));
        assert!(!t.accepts(s(1), A, &tok[..4]));
        assert!(!t.accepts(s(1), A, b""));
    }

    #[test]
    fn token_survives_one_rotation_not_two() {
        let mut t = Tokens::new(1, s(0));
        let tok = t.issue(s(299), A);
        assert!(t.accepts(s(300), A, &tok), "previous secret still accepted");
        assert!(t.accepts(s(599), A, &tok));
        assert!(
            !t.accepts(s(600), A, &tok),
            "two rotations later it is gone"
        );
        // A long sleep leaves both secrets fresh and never loops forever.
        let tok = t.issue(s(600), A);
        assert!(!t.accepts(s(1_000_000), A, &tok));
        assert!(t.next_rotation() > s(1_000_000));
    }

    #[test]
    fn different_seeds_make_different_tokens() {
        let mut a = Tokens::new(1, s(0));
        let mut b = Tokens::new(2, s(0));
        assert_ne!(a.issue(s(0), A), b.issue(s(0), A));
    }
}
