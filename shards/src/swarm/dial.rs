//! A torrent's connections being made: dialling addresses from its book while there is
//! room, and answering incoming ones whose handshake the shard has read. Either way,
//! once both handshakes are done the connection is `peer::run`'s.
//!
//! Room to dial is bounded three ways: [`CONNECTING_MAX`] dials in flight per torrent,
//! the shard's connection budget, and its per-IP cap (checked by `ip_guard`).

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::wire::Handshake;
use glommio::net::TcpStream;

use super::peer::{self, our_reserved};
use super::torrent::TorrentRt;

/// Outgoing connection attempts in flight per torrent.
const CONNECTING_MAX: usize = 16;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The handshake we send for this torrent.
fn handshake(rt: &TorrentRt) -> Handshake {
    Handshake {
        reserved: our_reserved(rt.uses_dht()),
        info_hash: rt.meta().info_hash,
        peer_id: rt.our_id(),
    }
}

/// Starts connections to known addresses while there is room.
///
/// An address the engine has banned stays claimed in the book, so it is not dialled
/// again.
pub fn connect_more(rt: &Rc<TorrentRt>) {
    let now = rt.now();
    let book = rt.book();
    while book.dialling() < CONNECTING_MAX && rt.engine().borrow().wants_peers() {
        let Some(addr) = book.claim_next(now) else {
            break;
        };
        if rt.engine().borrow().is_banned(addr) {
            continue;
        }
        let ip_slot = match rt.shard().guard.admit(addr.ip()) {
            Ok(ip_slot) => ip_slot,
            Err(refusal) => {
                book.refused(addr, refusal, now);
                continue;
            }
        };
        let Some(slot) = rt.shard().connection_slot() else {
            book.unclaim(addr);
            break;
        };
        book.dial_started();
        let rt = rt.clone();
        glommio::spawn_local(async move {
            let result = connect(&rt, addr).await;
            drop((slot, ip_slot));
            rt.book().dial_ended(addr, result.is_err(), rt.now());
            if let Err(why) = result {
                tracing::debug!(%addr, why, "connection failed");
            }
        })
        .detach();
    }
}

/// Dials `addr`, handshakes, and runs the connection until it ends.
async fn connect(rt: &Rc<TorrentRt>, addr: SocketAddr) -> Result<(), String> {
    let attempt = TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).await;
    rt.book().dial_settled();
    let mut stream = attempt.map_err(|e| e.to_string())?;
    let _ = stream.set_nodelay(true);
    peer::send_handshake(&mut stream, &handshake(rt))
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    let theirs = peer::read_handshake(&mut stream, &mut buf).await?;
    if theirs.info_hash != rt.meta().info_hash {
        return Err("answered for another torrent".into());
    }
    let pending = buf.split_off(ccbt_engine::wire::HANDSHAKE_LEN);
    peer::run(rt.clone(), stream, addr, theirs, pending, true).await;
    Ok(())
}

/// An incoming connection for this torrent, its handshake read into `buf`; we answer and
/// run it.
pub async fn accept(rt: Rc<TorrentRt>, mut stream: TcpStream, addr: SocketAddr, mut buf: Vec<u8>) {
    let theirs = match Handshake::parse(&buf) {
        Ok(hs) => hs,
        Err(_) => return,
    };
    if rt.engine().borrow().is_banned(addr) {
        return;
    }
    if peer::send_handshake(&mut stream, &handshake(&rt))
        .await
        .is_err()
    {
        return;
    }
    let pending = buf.split_off(ccbt_engine::wire::HANDSHAKE_LEN);
    peer::run(rt, stream, addr, theirs, pending, false).await;
}
