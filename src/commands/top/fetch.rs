//! The thread that talks to the daemon for `top`, so a slow or vanished daemon never
//! freezes the screen: every interval it asks what changed in the listing since its last
//! answer (`?since=SEQ`: the cost follows the number of changes, not of torrents), the
//! shards and the stats; and it runs the commands the keys ask for (then fetches at once,
//! to show their effect).
//!
//! Bounds: commands wait in a queue of [`COMMANDS_MAX`] (a key pressed when it is full
//! is refused with a message); updates wait in one of [`UPDATES_MAX`], which the screen
//! drains every tick (the thread waits for room). It ends when the screen goes away.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use super::model::{Command, Update, View};
use crate::native_api::client::{Client, ClientError};
use crate::native_api::wire::{Torrent, TorrentList};

pub const COMMANDS_MAX: usize = 8;
pub const UPDATES_MAX: usize = 4;

pub fn spawn(
    client: Client,
    interval: Duration,
    updates: SyncSender<Update>,
    commands: Receiver<Command>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("top-fetch".into())
        .spawn(move || run(&client, interval, &updates, &commands))
}

/// The daemon's torrents as the answers so far tell them.
#[derive(Debug, Default)]
pub struct Listing {
    /// The last answer's `seq`; `None` until a full listing arrived.
    seq: Option<u64>,
    by_hash: BTreeMap<String, Torrent>,
}

impl Listing {
    /// Takes an answer (full or increment); returns whether any torrent changed.
    pub fn apply(&mut self, answer: TorrentList) -> bool {
        if !answer.full && self.seq.is_none() {
            // An increment to nothing: cannot happen (no `since` was sent); ignore it.
            return false;
        }
        self.seq = Some(answer.seq);
        if answer.full {
            self.by_hash = answer
                .torrents
                .into_iter()
                .map(|t| (t.hash.clone(), t))
                .collect();
            return true;
        }
        let changed = !answer.torrents.is_empty() || !answer.removed.is_empty();
        for hash in &answer.removed {
            self.by_hash.remove(hash);
        }
        for t in answer.torrents {
            self.by_hash.insert(t.hash.clone(), t);
        }
        changed
    }

    pub fn torrents(&self) -> Vec<Torrent> {
        self.by_hash.values().cloned().collect()
    }

    /// Forget everything: the next answer is a full listing (after an error, the daemon
    /// may have restarted and its sequence numbers with it).
    fn reset(&mut self) {
        self.seq = None;
    }
}

fn run(
    client: &Client,
    interval: Duration,
    updates: &SyncSender<Update>,
    commands: &Receiver<Command>,
) {
    let mut listing = Listing::default();
    loop {
        let update = fetch(client, &mut listing).unwrap_or_else(|e| {
            listing.reset();
            Update::Failed(e.to_string())
        });
        if updates.send(update).is_err() {
            return;
        }
        // Until the next round, or at once after a command (to show its effect).
        match commands.recv_timeout(interval) {
            Ok(command) => {
                if updates.send(Update::Acted(act(client, &command))).is_err() {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

fn fetch(client: &Client, listing: &mut Listing) -> Result<Update, ClientError> {
    let answer = match listing.seq {
        Some(seq) => client.list_since(seq)?,
        None => client.list()?,
    };
    let changed = listing.apply(answer);
    let (shards, stats) = (client.shards()?, client.stats()?);
    Ok(if changed {
        Update::Fetched(Box::new(View {
            torrents: listing.torrents(),
            shards,
            stats,
        }))
    } else {
        Update::Figures { shards, stats }
    })
}

fn act(client: &Client, command: &Command) -> String {
    match client.act(&command.hash, command.action) {
        Ok(_) => format!("{}: {} done", command.name, command.action.name()),
        Err(e) => format!("{}: {} failed: {e}", command.name, command.action.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::torrent;
    use super::*;

    fn answer(seq: u64, full: bool, torrents: Vec<Torrent>, removed: &[&str]) -> TorrentList {
        TorrentList {
            seq,
            full,
            torrents,
            removed: removed.iter().map(|h| h.to_string()).collect(),
        }
    }

    fn names(l: &Listing) -> Vec<(String, String)> {
        l.torrents()
            .into_iter()
            .map(|t| (t.name, t.state))
            .collect()
    }

    #[test]
    fn increments_change_add_and_remove_rows_of_the_full_listing() {
        let (a, b, c) = (
            torrent("alpha", "seeding", 1),
            torrent("bravo", "seeding", 2),
            torrent("charlie", "seeding", 3),
        );
        let mut l = Listing::default();
        assert!(
            !l.apply(answer(5, false, vec![a.clone()], &[])),
            "no base yet"
        );
        assert!(l.apply(answer(5, true, vec![a.clone(), b.clone()], &[])));
        assert_eq!(l.seq, Some(5));
        assert!(!l.apply(answer(5, false, vec![], &[])), "nothing changed");
        let mut paused = b.clone();
        paused.state = "paused".into();
        assert!(l.apply(answer(6, false, vec![paused, c], &[&a.hash])));
        assert_eq!(l.seq, Some(6));
        let mut now = names(&l);
        now.sort();
        assert_eq!(
            now,
            [
                ("bravo".to_string(), "paused".to_string()),
                ("charlie".to_string(), "seeding".to_string())
            ]
        );
        // A full listing replaces everything.
        assert!(l.apply(answer(9, true, vec![a], &[])));
        assert_eq!(names(&l), [("alpha".to_string(), "seeding".to_string())]);
    }
}
