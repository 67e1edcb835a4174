//! A torrent's live connections: how to reach each one's tasks, and the peer id it
//! handshook with.
//!
//! The engine knows peers by [`PeerKey`]; this table is what the I/O side keeps for
//! the same keys: a doorbell for the writer task and the socket to shut. The peer ids
//! are kept so a second connection from a peer we already have is refused. An entry
//! is here from registration until the connection is dropped (by the engine, the peer,
//! or the torrent winding down); it is never here without the engine knowing the key.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;

use ccbt_engine::session::PeerKey;
use glommio::channels::local_channel::LocalSender;
use nix::sys::socket::{shutdown, Shutdown};

/// What the torrent keeps to reach a connection's tasks.
pub struct PeerHandle {
    doorbell: LocalSender<()>,
    fd: RawFd,
    pub addr: SocketAddr,
}

impl PeerHandle {
    /// `doorbell` rings the writer task; `fd` is the connection's socket.
    pub fn new(doorbell: LocalSender<()>, fd: RawFd, addr: SocketAddr) -> Self {
        PeerHandle { doorbell, fd, addr }
    }

    /// Tells the writer there is work.
    pub fn wake(&self) {
        let _ = self.doorbell.try_send(());
    }

    /// Ends the connection: both tasks see the socket shut.
    pub fn close(&self) {
        let _ = shutdown(self.fd, Shutdown::Both);
    }
}

/// The torrent's established connections, by engine key.
#[derive(Default)]
pub struct PeerTable {
    handles: RefCell<HashMap<PeerKey, PeerHandle>>,
    ids: RefCell<HashMap<PeerKey, [u8; 20]>>,
}

impl PeerTable {
    pub fn register(&self, key: PeerKey, handle: PeerHandle, peer_id: [u8; 20]) {
        self.handles.borrow_mut().insert(key, handle);
        self.ids.borrow_mut().insert(key, peer_id);
    }

    /// Takes the connection out of the table (its socket is not shut: the caller
    /// decides), if it was there.
    pub fn remove(&self, key: PeerKey) -> Option<PeerHandle> {
        self.ids.borrow_mut().remove(&key);
        self.handles.borrow_mut().remove(&key)
    }

    /// Whether the connection `key` is still in the table.
    /// The peer id connection `key` gave in its handshake.
    pub fn id_of(&self, key: PeerKey) -> Option<[u8; 20]> {
        self.ids.borrow().get(&key).copied()
    }

    pub fn contains(&self, key: PeerKey) -> bool {
        self.handles.borrow().contains_key(&key)
    }

    /// Whether a connection with this peer id is in the table.
    pub fn has_id(&self, peer_id: &[u8; 20]) -> bool {
        self.ids.borrow().values().any(|id| id == peer_id)
    }

    /// Rings the writer of connection `key`, if it is there.
    pub fn wake(&self, key: PeerKey) {
        if let Some(h) = self.handles.borrow().get(&key) {
            h.wake();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.handles.borrow().is_empty()
    }

    /// Every connection's key, for winding down.
    pub fn keys(&self) -> Vec<PeerKey> {
        self.handles.borrow().keys().copied().collect()
    }
}
