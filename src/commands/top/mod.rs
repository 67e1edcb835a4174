//! `ccbt-uring top`: a terminal dashboard of a running daemon, local or remote, over its
//! native HTTP API: the torrents with their state, progress, rates, peers and ratio; the
//! shards' load; totals. Keys sort, filter, select, pause and resume (see `--help`).
//!
//! Three parts: [`model`] (state and keys, no terminal), [`render`] (draws a model) and
//! [`fetch`] (the thread that talks to the daemon). This file only wires them to the
//! terminal. A daemon that goes away is shown as disconnected and asked again each round.

mod fetch;
mod model;
mod render;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::anyhow;
use ratatui::crossterm::event::{self, Event, KeyEventKind};

use crate::cli::TopArgs;
use crate::failure::{Exit, Failure, OrExit, Outcome};
use crate::native_api::client::Client;

/// How long the screen waits for a key before it looks for updates again.
const TICK: Duration = Duration::from_millis(100);

pub fn run(args: TopArgs) -> Outcome {
    let url = match &args.url {
        Some(url) => url.clone(),
        None => default_url()?,
    };
    let interval = Duration::from_millis(args.interval_ms);
    // A call may take at most a few rounds: a daemon that stopped answering shows as
    // disconnected soon, not after a long timeout.
    let timeout = (interval * 3).max(Duration::from_secs(3));
    let client = Client::new(&url, args.credentials.resolve(), timeout)
        .map_err(|e| Failure::new(Exit::BadInput, anyhow!("{e}")))?;
    let mut model = model::Model::new(client.base_url());
    let (update_tx, updates) = mpsc::sync_channel(fetch::UPDATES_MAX);
    let (commands, command_rx) = mpsc::sync_channel(fetch::COMMANDS_MAX);
    // Not joined at the end: it may be waiting out a call to a daemon that hangs, and
    // quitting should not wait for that. It ends with the process.
    let _fetcher = fetch::spawn(client, interval, update_tx, command_rx).or_exit(Exit::Runtime)?;
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            return Err(Failure::new(
                Exit::Io,
                anyhow!("cannot use this terminal: {e}"),
            ));
        }
    };
    let result = (|| -> std::io::Result<()> {
        // Drawn when something changed: an update, a key, a resize.
        let mut dirty = true;
        while !model.quit {
            while let Ok(update) = updates.try_recv() {
                model.update(update);
                dirty = true;
            }
            if dirty {
                terminal.draw(|frame| render::draw(frame, &model))?;
                dirty = false;
            }
            if !event::poll(TICK)? {
                continue;
            }
            match event::read()? {
                Event::Key(key) if key.kind == KeyEventKind::Press => {
                    dirty = true;
                    if let Some(command) = model.key(key) {
                        if commands.try_send(command).is_err() {
                            model.status = Some("busy: commands are still waiting".into());
                        }
                    }
                }
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        Ok(())
    })();
    ratatui::restore();
    result
        .map_err(|e| anyhow!("terminal: {e}"))
        .or_exit(Exit::Io)?;
    Ok(Exit::Ok)
}

/// `http://` and the configured control address (loopback when it listens on all).
fn default_url() -> Result<String, Failure> {
    let sources = ccbt_config::Sources::from_process(None, Vec::new()).or_exit(Exit::Io)?;
    let control = ccbt_config::Config::default_for_env(&sources.env)
        .daemon
        .control;
    Ok(format!("http://{}", reachable(control)))
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}
