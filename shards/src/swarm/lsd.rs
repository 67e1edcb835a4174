//! Local service discovery (BEP 14) for the process, run by shard 0 beside the DHT node.
//! The engine's [`Lsd`] is sans-I/O; this module owns its two sockets and its traffic
//! with the other shards:
//!
//! - a receiving socket bound to the group's address and port (239.192.152.143:6771,
//!   `SO_REUSEADDR` so other clients on the host can bind it too), a member of the group
//!   on the chosen interface; a sending socket on that interface, TTL 1 (the link only),
//!   with multicast loop on so that clients on one host find each other (our own
//!   announces come back and are dropped by their cookie);
//! - any shard's public torrent sends [`Command::Lsd`] to shard 0's inbox every
//!   [`ANNOUNCE_EVERY`]; shard 0 packs and paces them;
//! - a peer announced for a torrent goes to the shard that owns it ([`shard_for`]) as
//!   [`Command::LsdPeer`]; a full inbox drops it (it is announced again within minutes).
//!
//! Which interface: [`LsdConfig::interface`] if set, else the peer listen address if it is
//! one IPv4 address, else the kernel's choice for the group. When peers listen on
//! loopback only, LSD is off unless an interface is set: no one on a LAN could reach them.
//! Private torrents (BEP 27) are never announced, and their shard ignores LSD peers.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::lsd::{Lsd, LsdCounters, GROUP_V4, PORT};
use ccbt_engine::InfoHash;
use glommio::net::UdpSocket;
use socket2::{Domain, Protocol, Socket, Type};

use super::alarm::Alarm;
use super::clock::Clock;
use super::command::Command;
use super::inbox;
use super::shard_for;

/// A running torrent announces itself this often (as libtorrent does), and once at start.
pub const ANNOUNCE_EVERY: Duration = Duration::from_secs(5 * 60);
/// A torrent whose announce found shard 0's inbox full asks again this much later.
const RETRY_AFTER: Duration = Duration::from_secs(60);
/// The longest the sending task sleeps without looking at its queue.
const TICK_MAX: Duration = Duration::from_secs(1);

/// `[lsd]` for the swarm.
#[derive(Debug, Clone)]
pub struct LsdConfig {
    pub enabled: bool,
    /// The IPv4 address of the interface to announce and listen on.
    pub interface: Option<Ipv4Addr>,
}

impl Default for LsdConfig {
    fn default() -> Self {
        LsdConfig {
            enabled: true,
            interface: None,
        }
    }
}

/// The interface LSD runs on for peers listening on `listen`, or why it is off.
pub fn interface(config: &LsdConfig, listen: IpAddr) -> Result<Ipv4Addr, &'static str> {
    if !config.enabled {
        return Err("turned off");
    }
    if let Some(interface) = config.interface {
        return Ok(interface);
    }
    match listen {
        IpAddr::V4(v4) if v4.is_loopback() => Err("peers listen on loopback only"),
        IpAddr::V4(v4) => Ok(v4),
        IpAddr::V6(v6) if v6.is_loopback() => Err("peers listen on loopback only"),
        IpAddr::V6(_) => Ok(Ipv4Addr::UNSPECIFIED),
    }
}

/// When a torrent next asks shard 0 to announce it: at once, then every
/// [`ANNOUNCE_EVERY`].
pub struct Schedule {
    next: Duration,
}

impl Schedule {
    pub fn new(now: Duration) -> Self {
        Schedule { next: now }
    }

    pub fn next(&self) -> Duration {
        self.next
    }

    /// Sends `info_hash`'s announce to shard 0 if it is due. An inbox a quarter full
    /// already (a hundred thousand torrents starting at once) is left to the commands
    /// that matter more: the announce is asked for again a minute later.
    pub fn ask(&mut self, to: &inbox::Sender<Command>, info_hash: InfoHash, now: Duration) {
        if now < self.next {
            return;
        }
        let room = to.len() < super::INBOX_LEN / 4;
        let sent = room && to.try_send(Command::Lsd(info_hash)).is_ok();
        self.next = now + if sent { ANNOUNCE_EVERY } else { RETRY_AFTER };
    }
}

/// The service and its sockets, on shard 0.
pub struct LsdService {
    lsd: RefCell<Lsd>,
    receiving: UdpSocket,
    sending: UdpSocket,
    clock: Clock,
    inboxes: Vec<inbox::Sender<Command>>,
    alarm: Alarm,
}

impl LsdService {
    /// Opens the sockets and joins the group on `interface`. `None` (logged) when that
    /// fails: the swarm then runs without LSD.
    pub fn start(
        interface: Ipv4Addr,
        port: u16,
        clock: Clock,
        seed: u64,
        inboxes: Vec<inbox::Sender<Command>>,
    ) -> Option<Rc<LsdService>> {
        let sockets = open_receiving(interface).and_then(|r| Ok((r, open_sending(interface)?)));
        let (receiving, sending) = match sockets {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(%interface, error = %e, "LSD off: cannot join its multicast group");
                return None;
            }
        };
        tracing::info!(%interface, "LSD (BEP 14) on {GROUP_V4}:{PORT}");
        Some(Rc::new(LsdService {
            lsd: RefCell::new(Lsd::new(port, seed, Default::default())),
            receiving,
            sending,
            clock,
            inboxes,
            alarm: Alarm::default(),
        }))
    }

    /// Queues a torrent's announce (what it costs the shard: a queue push).
    pub fn request(&self, info_hash: InfoHash) {
        if !self.lsd.borrow_mut().announce(info_hash) {
            tracing::debug!(%info_hash, "LSD announce queue full; announce dropped");
        }
        self.alarm.ring();
    }

    pub fn counters(&self) -> LsdCounters {
        self.lsd.borrow().counters()
    }

    /// Runs until dropped: announces out at their pace; what arrives, to its torrents.
    pub async fn run(self: Rc<Self>) {
        // Ended with this task: dropping a glommio task handle cancels the task.
        let _receiving = glommio::spawn_local(self.clone().receive());
        let group = SocketAddr::V4(SocketAddrV4::new(GROUP_V4, PORT));
        loop {
            loop {
                let next = self.lsd.borrow_mut().poll_datagram(self.clock.now());
                let Some(datagram) = next else { break };
                if let Err(e) = self.sending.send_to(&datagram, group).await {
                    tracing::debug!(error = %e, "LSD announce not sent");
                }
            }
            let now = self.clock.now();
            let nap = self
                .lsd
                .borrow()
                .poll_timeout(now)
                .map_or(TICK_MAX, |t| t.saturating_sub(now).min(TICK_MAX));
            self.alarm.sleep(nap.max(Duration::from_millis(1))).await;
        }
    }

    async fn receive(self: Rc<Self>) {
        let mut buf = vec![0u8; 4096];
        loop {
            match self.receiving.recv_from(&mut buf).await {
                Ok((n, from)) => {
                    let found =
                        self.lsd
                            .borrow_mut()
                            .handle_datagram(self.clock.now(), from, &buf[..n]);
                    for f in found {
                        let shard = shard_for(&f.info_hash, self.inboxes.len());
                        let command = Command::LsdPeer {
                            info_hash: f.info_hash,
                            peer: f.peer,
                        };
                        if self.inboxes[shard.0 as usize].try_send(command).is_err() {
                            tracing::debug!(info_hash = %f.info_hash, "LSD peer dropped: inbox full");
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "LSD receive failed");
                    glommio::timer::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Bound to the group's address, so only datagrams sent to it arrive.
fn open_receiving(interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(GROUP_V4, PORT)).into())?;
    socket.join_multicast_v4(&GROUP_V4, &interface)?;
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from(socket))
}

fn open_sending(interface: Ipv4Addr) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(interface, 0)).into())?;
    socket.set_multicast_if_v4(&interface)?;
    socket.set_multicast_ttl_v4(1)?;
    socket.set_multicast_loop_v4(true)?;
    socket.set_nonblocking(true)?;
    Ok(UdpSocket::from(socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interface_follows_the_config_then_the_listen_address() {
        let on = LsdConfig::default();
        let lan = Ipv4Addr::new(192, 168, 1, 5);
        assert_eq!(interface(&on, IpAddr::V4(lan)), Ok(lan));
        assert_eq!(
            interface(&on, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            Ok(Ipv4Addr::UNSPECIFIED)
        );
        assert!(interface(&on, IpAddr::V4(Ipv4Addr::LOCALHOST)).is_err());
        assert!(interface(&on, IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)).is_err());
        let chosen = LsdConfig {
            interface: Some(lan),
            ..on.clone()
        };
        assert_eq!(interface(&chosen, IpAddr::V4(Ipv4Addr::LOCALHOST)), Ok(lan));
        let off = LsdConfig {
            enabled: false,
            ..chosen
        };
        assert!(interface(&off, IpAddr::V4(lan)).is_err());
    }
}
