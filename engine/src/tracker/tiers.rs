//! BEP 12 tracker tiers: which tracker to announce to next.
//!
//! Trackers within a tier are shuffled once, so clients spread their load; a tracker that
//! answers moves to the front of its tier, so we keep using what works. Each new round
//! starts again from the first tier, as BEP 12 asks.

use crate::rng::SplitMix64;

/// The trackers of one torrent, in BEP 12 order, with a cursor on the one to try now.
#[derive(Debug, Clone)]
pub struct TrackerList {
    /// Non-empty tiers of distinct URLs.
    tiers: Vec<Vec<String>>,
    tier: usize,
    index: usize,
}

impl TrackerList {
    /// Builds the list from a torrent's tiers. Blank URLs, URLs already listed (in this or
    /// an earlier tier) and tiers left empty are dropped; each tier is shuffled with `seed`.
    pub fn new(tiers: Vec<Vec<String>>, seed: u64) -> Self {
        let mut rng = SplitMix64::new(seed);
        let mut seen: Vec<String> = Vec::new();
        let mut kept = Vec::new();
        for tier in tiers {
            let mut urls: Vec<String> = Vec::new();
            for url in tier {
                let url = url.trim();
                if !url.is_empty() && !seen.iter().any(|s| s == url) {
                    seen.push(url.to_string());
                    urls.push(url.to_string());
                }
            }
            // Fisher–Yates.
            for i in (1..urls.len()).rev() {
                let j = rng.below_u64(i as u64 + 1) as usize;
                urls.swap(i, j);
            }
            if !urls.is_empty() {
                kept.push(urls);
            }
        }
        Self {
            tiers: kept,
            tier: 0,
            index: 0,
        }
    }

    /// The tracker to announce to now; `None` only when the list is empty.
    pub fn current(&self) -> Option<&str> {
        self.tiers
            .get(self.tier)
            .and_then(|t| t.get(self.index))
            .map(String::as_str)
    }

    /// The current tracker answered: it moves to the front of its tier, and the next
    /// round starts from the first tier.
    pub fn on_success(&mut self) {
        if let Some(tier) = self.tiers.get_mut(self.tier) {
            if let Some(prefix) = tier.get_mut(..=self.index) {
                prefix.rotate_right(1);
            }
        }
        self.tier = 0;
        self.index = 0;
    }

    /// The current tracker failed: try the next one in its tier, then the next tier, and
    /// after the last tracker of the last tier, the first again.
    pub fn on_failure(&mut self) {
        let Some(tier) = self.tiers.get(self.tier) else {
            return;
        };
        self.index += 1;
        if self.index >= tier.len() {
            self.index = 0;
            self.tier = (self.tier + 1) % self.tiers.len();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tiers.is_empty()
    }

    /// Number of distinct trackers.
    pub fn len(&self) -> usize {
        self.tiers.iter().map(Vec::len).sum()
    }

    /// Every tracker, tier by tier, in current order.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.tiers.iter().flatten().map(String::as_str)
    }

    /// The tiers in current order.
    pub fn tiers(&self) -> &[Vec<String>] {
        &self.tiers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tiers(t: &[&[&str]]) -> Vec<Vec<String>> {
        t.iter()
            .map(|tier| tier.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn cleans_up_input() {
        let list = TrackerList::new(tiers(&[&[" a ", ""], &["a"], &[], &["b", "b"]]), 1);
        assert_eq!(list.tiers(), tiers(&[&["a"], &["b"]]));
        assert_eq!(list.len(), 2);
        let empty = TrackerList::new(tiers(&[&[""]]), 1);
        assert!(empty.is_empty());
        assert_eq!(empty.current(), None);
    }

    #[test]
    fn rotation_through_tiers_and_back() {
        let mut list = TrackerList::new(tiers(&[&["a1", "a2"], &["b1"]]), 7);
        let tier0: Vec<String> = list.tiers()[0].clone();
        let mut visited = Vec::new();
        for _ in 0..4 {
            visited.push(list.current().unwrap().to_string());
            list.on_failure();
        }
        assert_eq!(visited, [&tier0[0], &tier0[1], "b1", &tier0[0]]);
    }

    #[test]
    fn success_moves_tracker_to_front_and_restarts() {
        let mut list = TrackerList::new(tiers(&[&["a1", "a2", "a3"], &["b1"]]), 3);
        let order: Vec<String> = list.tiers()[0].clone();
        list.on_failure();
        list.on_failure();
        assert_eq!(list.current(), Some(order[2].as_str()));
        list.on_success();
        assert_eq!(list.tiers()[0], [order[2].as_str(), &order[0], &order[1]]);
        assert_eq!(list.current(), Some(order[2].as_str()));
        // Success in a later tier restarts from the first tier.
        for _ in 0..3 {
            list.on_failure();
        }
        assert_eq!(list.current(), Some("b1"));
        list.on_success();
        assert_eq!(list.current(), Some(order[2].as_str()));
    }

    #[test]
    fn shuffle_depends_on_seed() {
        let urls: Vec<String> = (0..10).map(|i| format!("http://t{i}")).collect();
        let orders: Vec<Vec<String>> = (0..4)
            .map(|seed| {
                TrackerList::new(vec![urls.clone()], seed)
                    .all()
                    .map(String::from)
                    .collect()
            })
            .collect();
        assert!(orders.iter().any(|o| *o != orders[0]));
        let again: Vec<String> = TrackerList::new(vec![urls], 0)
            .all()
            .map(String::from)
            .collect();
        assert_eq!(again, orders[0]);
    }

    proptest! {
        #[test]
        fn cursor_stays_valid_and_set_is_preserved(
            input in proptest::collection::vec(proptest::collection::vec("[a-d]{0,2}", 0..4), 0..4),
            moves in proptest::collection::vec(any::<bool>(), 0..40),
            seed in any::<u64>(),
        ) {
            let mut list = TrackerList::new(input.clone(), seed);
            let mut before: Vec<String> = list.all().map(String::from).collect();
            before.sort();
            let mut expected: Vec<String> = input.into_iter().flatten().filter(|s| !s.is_empty()).collect();
            expected.sort();
            expected.dedup();
            prop_assert_eq!(&before, &expected);
            for success in moves {
                if success { list.on_success() } else { list.on_failure() }
                prop_assert_eq!(list.current().is_some(), !list.is_empty());
            }
            let mut after: Vec<String> = list.all().map(String::from).collect();
            after.sort();
            prop_assert_eq!(after, before);
        }
    }
}
