//! Free ports on 127.0.0.1 for the tracker, the seeders and the downloaders.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher};
use std::net::{TcpListener, UdpSocket};

use anyhow::{Context, Result};

/// Hands out TCP-and-UDP ports on 127.0.0.1 that are free now and were never handed out
/// before by this allocator, so a tracker entry left by an earlier process can never be
/// mistaken for a new one. Ports come from below the kernel's ephemeral range (32768+) so
/// outgoing connections do not take them before their owner binds them.
#[derive(Default)]
pub struct Ports {
    given: HashSet<u16>,
    random: std::collections::hash_map::RandomState,
}

impl Ports {
    pub fn next(&mut self) -> Result<u16> {
        self.next_run(1)
    }

    /// The first of `count` consecutive ports, all free and new (for a load-generator
    /// seeder, whose endpoints take consecutive ports).
    pub fn next_run(&mut self, count: u16) -> Result<u16> {
        let count = count.max(1);
        let first = (0..10_000u64)
            .map(|attempt| {
                let mut hasher = self.random.build_hasher();
                hasher.write_u64(attempt);
                20_000 + (hasher.finish() % 12_000) as u16
            })
            .find(|&first| (first..first.saturating_add(count)).all(|p| self.is_free(p)))
            .context("no free ports in 20000..32000")?;
        self.given.extend(first..first + count);
        Ok(first)
    }

    fn is_free(&self, port: u16) -> bool {
        (20_000..32_000).contains(&port)
            && !self.given.contains(&port)
            && TcpListener::bind(("127.0.0.1", port)).is_ok()
            && UdpSocket::bind(("127.0.0.1", port)).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_hands_out_a_port_twice() {
        let mut ports = Ports::default();
        let given: Vec<u16> = (0..50).map(|_| ports.next().unwrap()).collect();
        let unique: HashSet<u16> = given.iter().copied().collect();
        assert_eq!(unique.len(), given.len());
        assert!(given.iter().all(|p| (20_000..32_000).contains(p)));
        let first = ports.next_run(8).unwrap();
        assert!((first..first + 8).all(|p| !given.contains(&p)));
        let after = ports.next().unwrap();
        assert!(!(first..first + 8).contains(&after));
    }
}
