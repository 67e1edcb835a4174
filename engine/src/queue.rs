//! Seedbox queueing: which torrents may run, given limits on how many download, seed and
//! check at once, and the queue moves that reorder them.
//!
//! Why: a seedbox holds hundreds of torrents but only a few should download or hash at the
//! same time. [`plan`] decides, in queue order (lower position first), which torrents should
//! be active and returns the difference from what is active now, so the caller starts and
//! stops only what changes.
//!
//! Rules, as in Transmission and qBittorrent:
//! - each kind (downloading, seeding, checking) has its own limit; `None` is unlimited and
//!   `Some(0)` lets none of that kind run (except forced ones);
//! - forced torrents run whatever the limits and take no slot;
//! - paused torrents never run (an active paused torrent is in `stop`);
//! - an active torrent marked stalled keeps running but takes no slot, so a dead torrent
//!   does not hold the queue up (Transmission's queue-stalled, qBittorrent's "do not count
//!   slow torrents"); `stalled` means nothing for a torrent that is not active;
//! - within a kind, slots go to the lowest queue positions, so a torrent moved up the queue
//!   can displace an active one further down (which is then in `stop`).
//!
//! Queue positions need not be dense or unique on input: ties are broken by id. The move
//! functions renumber every entry densely from 0.

use std::collections::BTreeSet;

/// What a torrent would do if it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorrentState {
    /// Incomplete: running means downloading.
    Downloading,
    /// Complete: running means seeding.
    Seeding,
    /// Waiting for or doing a hash check of its data.
    Checking,
    /// Stopped by the user: never started by the queue.
    Paused,
    /// Stopped by an error (missing files, disk full): never started by the queue.
    Errored,
}

/// One torrent as the queue sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueEntry<Id> {
    pub id: Id,
    /// Lower runs first.
    pub queue_position: u32,
    pub state: TorrentState,
    /// Whether it is running now.
    pub active: bool,
    /// Runs regardless of limits, and counts toward none.
    pub forced: bool,
    /// Active but idle for a while: keeps running, takes no slot.
    pub stalled: bool,
}

/// How many torrents of each kind may be active at once; `None` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueLimits {
    pub max_active_downloads: Option<u32>,
    pub max_active_seeds: Option<u32>,
    pub max_active_checks: Option<u32>,
}

impl QueueLimits {
    /// No limits at all.
    pub const UNLIMITED: QueueLimits = QueueLimits {
        max_active_downloads: None,
        max_active_seeds: None,
        max_active_checks: None,
    };

    /// Reads a limit the way qBittorrent's and Transmission's settings store it: any negative
    /// number means unlimited.
    pub fn limit_from_i64(value: i64) -> Option<u32> {
        u32::try_from(value)
            .ok()
            .or_else(|| (value > 0).then_some(u32::MAX))
    }

    fn of(&self, state: TorrentState) -> Option<u32> {
        match state {
            TorrentState::Downloading => self.max_active_downloads,
            TorrentState::Seeding => self.max_active_seeds,
            TorrentState::Checking => self.max_active_checks,
            TorrentState::Paused | TorrentState::Errored => Some(0),
        }
    }
}

/// The changes that bring the active set to what the limits allow; each list in queue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan<Id> {
    /// Not active now, should be.
    pub start: Vec<Id>,
    /// Active now, should not be.
    pub stop: Vec<Id>,
}

/// Decides which torrents should be active; see the module docs for the rules.
pub fn plan<Id: Copy + Ord>(entries: &[QueueEntry<Id>], limits: &QueueLimits) -> Plan<Id> {
    let mut order: Vec<&QueueEntry<Id>> = entries.iter().collect();
    order.sort_by_key(|e| (e.queue_position, e.id));
    let (mut downloads, mut seeds, mut checks) = (0u32, 0u32, 0u32);
    let mut plan = Plan {
        start: Vec::new(),
        stop: Vec::new(),
    };
    for entry in order {
        let runnable = !matches!(entry.state, TorrentState::Paused | TorrentState::Errored);
        let should_run = runnable
            && (entry.forced || (entry.active && entry.stalled) || {
                let used = match entry.state {
                    TorrentState::Downloading => &mut downloads,
                    TorrentState::Seeding => &mut seeds,
                    _ => &mut checks,
                };
                let fits = limits.of(entry.state).is_none_or(|max| *used < max);
                if fits {
                    *used += 1;
                }
                fits
            });
        match (entry.active, should_run) {
            (false, true) => plan.start.push(entry.id),
            (true, false) => plan.stop.push(entry.id),
            _ => {}
        }
    }
    plan
}

/// Where [`move_in_queue`] moves the selected torrents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueMove {
    /// To the front of the queue.
    Top,
    /// One place toward the front.
    Up,
    /// One place toward the back.
    Down,
    /// To the back of the queue.
    Bottom,
}

/// Moves the entries whose id is in `ids` (Transmission's `queue-move-*`), keeping their
/// relative order, then renumbers every entry's `queue_position` densely from 0. Ids not in
/// `entries` are ignored. For Up/Down, a selected torrent already at the front (back), or
/// right behind (before) another selected one that cannot move, stays where it is, so a
/// selected block moves as a block.
///
/// The slice itself is not reordered; only `queue_position` changes.
pub fn move_in_queue<Id: Copy + Ord>(entries: &mut [QueueEntry<Id>], ids: &[Id], how: QueueMove) {
    let selected: BTreeSet<Id> = ids.iter().copied().collect();
    // Slice indices in queue order.
    let mut order: Vec<usize> = (0..entries.len()).collect();
    order.sort_by_key(|&i| (entries[i].queue_position, entries[i].id));
    let picked = |i: &usize| selected.contains(&entries[*i].id);
    match how {
        QueueMove::Top | QueueMove::Bottom => {
            let (chosen, rest): (Vec<usize>, Vec<usize>) = order.iter().partition(|i| picked(i));
            order = if how == QueueMove::Top {
                [chosen, rest].concat()
            } else {
                [rest, chosen].concat()
            };
        }
        QueueMove::Up => {
            for at in 1..order.len() {
                if picked(&order[at]) && !picked(&order[at - 1]) {
                    order.swap(at, at - 1);
                }
            }
        }
        QueueMove::Down => {
            for at in (0..order.len().saturating_sub(1)).rev() {
                if picked(&order[at]) && !picked(&order[at + 1]) {
                    order.swap(at, at + 1);
                }
            }
        }
    }
    for (position, i) in order.into_iter().enumerate() {
        entries[i].queue_position = u32::try_from(position).unwrap_or(u32::MAX);
    }
}

/// [`move_in_queue`] with [`QueueMove::Top`].
pub fn move_top<Id: Copy + Ord>(entries: &mut [QueueEntry<Id>], ids: &[Id]) {
    move_in_queue(entries, ids, QueueMove::Top);
}

/// [`move_in_queue`] with [`QueueMove::Up`].
pub fn move_up<Id: Copy + Ord>(entries: &mut [QueueEntry<Id>], ids: &[Id]) {
    move_in_queue(entries, ids, QueueMove::Up);
}

/// [`move_in_queue`] with [`QueueMove::Down`].
pub fn move_down<Id: Copy + Ord>(entries: &mut [QueueEntry<Id>], ids: &[Id]) {
    move_in_queue(entries, ids, QueueMove::Down);
}

/// [`move_in_queue`] with [`QueueMove::Bottom`].
pub fn move_bottom<Id: Copy + Ord>(entries: &mut [QueueEntry<Id>], ids: &[Id]) {
    move_in_queue(entries, ids, QueueMove::Bottom);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use TorrentState::*;

    /// A queue drawn as a string, in queue order, one torrent per character position
    /// (ids 'a', 'b', …). Letters: `D` downloading, `S` seeding, `C` checking, `P` paused;
    /// lowercase = not active now; `!` after a letter = forced, `~` = stalled.
    fn picture(s: &str) -> Vec<QueueEntry<char>> {
        let mut entries: Vec<QueueEntry<char>> = Vec::new();
        for c in s.chars() {
            match c {
                '!' => entries.last_mut().unwrap().forced = true,
                '~' => entries.last_mut().unwrap().stalled = true,
                ' ' => {}
                _ => {
                    let state = match c.to_ascii_uppercase() {
                        'D' => Downloading,
                        'S' => Seeding,
                        'C' => Checking,
                        'P' => Paused,
                        _ => Errored,
                    };
                    let n = entries.len() as u32;
                    entries.push(QueueEntry {
                        id: char::from(b'a' + n as u8),
                        queue_position: n,
                        state,
                        active: c.is_ascii_uppercase(),
                        forced: false,
                        stalled: false,
                    });
                }
            }
        }
        entries
    }

    fn limits(downloads: Option<u32>, seeds: Option<u32>, checks: Option<u32>) -> QueueLimits {
        QueueLimits {
            max_active_downloads: downloads,
            max_active_seeds: seeds,
            max_active_checks: checks,
        }
    }

    fn run(s: &str, l: QueueLimits) -> (String, String) {
        let p = plan(&picture(s), &l);
        (p.start.into_iter().collect(), p.stop.into_iter().collect())
    }

    #[test]
    fn fills_free_slots_in_queue_order() {
        //              a b c d
        assert_eq!(
            run("d d d d", limits(Some(2), None, None)),
            ("ab".into(), "".into())
        );
        assert_eq!(
            run("D d d d", limits(Some(2), None, None)),
            ("b".into(), "".into())
        );
    }

    #[test]
    fn a_torrent_moved_up_displaces_a_later_active_one() {
        assert_eq!(
            run("d D D", limits(Some(2), None, None)),
            ("a".into(), "c".into())
        );
    }

    #[test]
    fn kinds_have_separate_limits() {
        //              a b c d e f
        assert_eq!(
            run("d s c d s c", limits(Some(1), Some(1), Some(1))),
            ("abc".into(), "".into())
        );
        assert_eq!(
            run("s s s", limits(Some(0), Some(0), None)),
            ("".into(), "".into())
        );
        assert_eq!(
            run("S C", limits(None, Some(0), Some(0))),
            ("".into(), "ab".into())
        );
    }

    #[test]
    fn forced_ignores_limits_and_takes_no_slot() {
        assert_eq!(
            run("d! d d", limits(Some(1), None, None)),
            ("ab".into(), "".into())
        );
        assert_eq!(
            run("D! D D", limits(Some(0), None, None)),
            ("".into(), "bc".into())
        );
    }

    #[test]
    fn paused_and_errored_never_start() {
        assert_eq!(run("p p! x d", UNLIMITED), ("d".into(), "".into()));
        assert_eq!(
            run("P d", limits(Some(1), None, None)),
            ("b".into(), "a".into())
        );
    }

    #[test]
    fn stalled_active_torrents_keep_running_without_a_slot() {
        assert_eq!(
            run("D~ d d", limits(Some(1), None, None)),
            ("b".into(), "".into())
        );
        // Stalled means nothing for one that is not running: it queues normally.
        assert_eq!(
            run("d~ d", limits(Some(1), None, None)),
            ("a".into(), "".into())
        );
    }

    #[test]
    fn unlimited_starts_everything_runnable() {
        assert_eq!(run("d s c p", UNLIMITED), ("abc".into(), "".into()));
        assert_eq!(QueueLimits::default(), UNLIMITED);
    }

    #[test]
    fn sparse_and_tied_positions_are_ordered_by_position_then_id() {
        let mut entries = picture("d d d");
        entries[0].queue_position = 50;
        entries[1].queue_position = 7;
        entries[2].queue_position = 7;
        let p = plan(&entries, &limits(Some(2), None, None));
        assert_eq!(p.start, ['b', 'c']);
    }

    #[test]
    fn negative_limits_mean_unlimited() {
        assert_eq!(QueueLimits::limit_from_i64(-1), None);
        assert_eq!(QueueLimits::limit_from_i64(0), Some(0));
        assert_eq!(QueueLimits::limit_from_i64(5), Some(5));
        assert_eq!(QueueLimits::limit_from_i64(i64::MAX), Some(u32::MAX));
    }

    const UNLIMITED: QueueLimits = QueueLimits::UNLIMITED;

    /// The queue after a move, as ids in position order.
    fn after(s: &str, ids: &str, how: QueueMove) -> String {
        let mut entries = picture(s);
        let ids: Vec<char> = ids.chars().collect();
        move_in_queue(&mut entries, &ids, how);
        let mut positions: Vec<u32> = entries.iter().map(|e| e.queue_position).collect();
        positions.sort_unstable();
        assert_eq!(positions, (0..entries.len() as u32).collect::<Vec<_>>());
        entries.sort_by_key(|e| e.queue_position);
        entries.iter().map(|e| e.id).collect()
    }

    #[test]
    fn moves_keep_the_selection_in_order() {
        use QueueMove::*;
        //                   abcdef
        assert_eq!(after("dddddd", "db", Top), "bdacef");
        assert_eq!(after("dddddd", "db", Bottom), "acefbd");
        assert_eq!(after("dddddd", "bd", Up), "badcef");
        assert_eq!(after("dddddd", "ce", Down), "abdcfe");
        // A block at the front stays; the next selected one joins it.
        assert_eq!(after("dddddd", "abd", Up), "abdcef");
        assert_eq!(after("dddddd", "ef", Down), "abcdef");
        assert_eq!(after("dddddd", "af", Down), "bacdef");
        // Unknown ids and duplicates are ignored.
        assert_eq!(after("ddd", "zcc", Top), "cab");
        assert_eq!(after("", "a", Up), "");
    }

    #[test]
    fn moves_renumber_sparse_positions_densely() {
        let mut entries = picture("ddd");
        entries[0].queue_position = 10;
        entries[1].queue_position = 20;
        entries[2].queue_position = 30;
        move_bottom(&mut entries, &['a']);
        let positions: Vec<u32> = entries.iter().map(|e| e.queue_position).collect();
        assert_eq!(positions, [2, 0, 1]);
        move_top(&mut entries, &['a']);
        move_up(&mut entries, &['c']);
        move_down(&mut entries, &['a']);
        let positions: Vec<u32> = entries.iter().map(|e| e.queue_position).collect();
        assert_eq!(positions, [1, 2, 0]);
    }

    fn entry_strategy() -> impl Strategy<Value = (u32, u8, bool, bool, bool)> {
        (
            0u32..20,
            0u8..5,
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
    }

    proptest! {
        #[test]
        fn plan_respects_limits_and_only_changes_what_it_must(
            raw in proptest::collection::vec(entry_strategy(), 0..30),
            d in proptest::option::of(0u32..4),
            s in proptest::option::of(0u32..4),
            c in proptest::option::of(0u32..4),
        ) {
            let entries: Vec<QueueEntry<u32>> = raw.iter().enumerate().map(|(i, &(pos, st, active, forced, stalled))| QueueEntry {
                id: i as u32,
                queue_position: pos,
                state: [Downloading, Seeding, Checking, Paused, Errored][usize::from(st)],
                active, forced, stalled,
            }).collect();
            let l = limits(d, s, c);
            let p = plan(&entries, &l);
            let running = |e: &QueueEntry<u32>| (e.active && !p.stop.contains(&e.id)) || p.start.contains(&e.id);
            for kind in [Downloading, Seeding, Checking] {
                let counted = entries.iter().filter(|e| e.state == kind && running(e) && !e.forced && !(e.active && e.stalled)).count();
                prop_assert!(l.of(kind).is_none_or(|max| counted <= max as usize));
            }
            for e in &entries {
                if matches!(e.state, Paused | Errored) { prop_assert!(!running(e)); }
                if e.forced && !matches!(e.state, Paused | Errored) { prop_assert!(running(e)); }
                if p.start.contains(&e.id) { prop_assert!(!e.active); }
                if p.stop.contains(&e.id) { prop_assert!(e.active); }
            }
            // Applying the plan and planning again changes nothing (a torrent just started is
            // not stalled).
            let applied: Vec<_> = entries.iter().map(|e| QueueEntry {
                active: running(e),
                stalled: e.stalled && e.active,
                ..*e
            }).collect();
            let again = plan(&applied, &l);
            prop_assert!(again.start.is_empty() && again.stop.is_empty());
        }
    }
}
