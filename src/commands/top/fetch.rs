//! The thread that talks to the daemon for `top`, so a slow or vanished daemon never
//! freezes the screen: it fetches the listing, the shards and the stats every interval,
//! and runs the commands the keys ask for (then fetches at once, to show their effect).
//!
//! Bounds: commands wait in a queue of [`COMMANDS_MAX`] (a key pressed when it is full
//! is refused with a message); updates wait in one of [`UPDATES_MAX`], which the screen
//! drains every tick (the thread waits for room). It ends when the screen goes away.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::Duration;

use super::model::{Command, Update, View};
use crate::native_api::client::Client;

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

fn run(
    client: &Client,
    interval: Duration,
    updates: &SyncSender<Update>,
    commands: &Receiver<Command>,
) {
    loop {
        if updates.send(fetch(client)).is_err() {
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

fn fetch(client: &Client) -> Update {
    let view = client.list().and_then(|list| {
        Ok(View {
            torrents: list.torrents,
            shards: client.shards()?,
            stats: client.stats()?,
        })
    });
    match view {
        Ok(view) => Update::Fetched(Box::new(view)),
        Err(e) => Update::Failed(e.to_string()),
    }
}

fn act(client: &Client, command: &Command) -> String {
    match client.act(&command.hash, command.action) {
        Ok(_) => format!("{}: {} done", command.name, command.action.name()),
        Err(e) => format!("{}: {} failed: {e}", command.name, command.action.name()),
    }
}
