//! A torrent's run loop on its shard: ticks the engine, carries out what it asks, dials,
//! announces, reports durable pieces, and naps when idle; then winds down (sync, last
//! report, goodbye to the tracker, peers dropped) when asked to stop, on a fault, or once
//! complete unless it keeps seeding.

use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::tracker::{Announce, Announcer, Event};

use super::address_book::PeerSource;
use super::announce_gate::host_key;
use super::dial;
use super::events::{FileStamp, SwarmEvent};
use super::goodbye::Turn;
use super::status::TorrentFault;
use super::torrent::TorrentRt;
use super::tracker;
use super::web_seed;
use crate::mapped::path_under;

/// How often a torrent with peers does its periodic work.
pub(super) const TICK: Duration = Duration::from_millis(100);
/// The longest an idle torrent (no peers, nothing to try) sleeps without being rung.
const IDLE_NAP_MAX: Duration = Duration::from_secs(60);
/// How often a torrent that wrote pieces syncs its files and reports them durable, when
/// its front end keeps resume data: at most this much verified data is fetched again
/// after a crash.
const DURABLE_EVERY: Duration = Duration::from_secs(1);
/// How long a torrent waits to ask again when the shard's announce line is full.
const ANNOUNCE_DEFER: Duration = Duration::from_secs(5);

/// The torrent's life on its shard: ticks, announces and connections until asked to
/// stop or a fault stops it, or until complete unless `keep_seeding`.
pub async fn run(rt: Rc<TorrentRt>, keep_seeding: bool) {
    web_seed::start(&rt);
    let mut was_done = rt.engine().borrow().is_done();
    let mut next_durable = rt.now() + DURABLE_EVERY;
    let first_tracker = rt.announcer().borrow().current().map(str::to_string);
    if let Some(url) = first_tracker {
        rt.shard()
            .scraper
            .want(rt.meta().info_hash, &url, rt.status());
    }
    // BEP 27: a private torrent is never looked up or announced on the DHT.
    let dht = rt.shard().dht.clone().filter(|_| rt.uses_dht());
    let mut dht_asks = super::dht::AskSchedule::new(rt.now());
    // BEP 14 likewise.
    let lsd = rt.shard().lsd.clone().filter(|_| rt.uses_lsd());
    let mut lsd_asks = super::lsd::Schedule::new(rt.now());
    while !rt.stop_signal().is_set() && !rt.has_failed() {
        let now = rt.now();
        if let Some(dht) = &dht {
            if dht_asks.due(now) {
                let request = super::dht::DhtRequest::Lookup {
                    info_hash: rt.meta().info_hash,
                    shard: rt.shard().id,
                    announce: true,
                };
                super::dht::ask(dht, request);
            }
        }
        if let Some(lsd) = &lsd {
            lsd_asks.ask(lsd, rt.meta().info_hash, now);
        }
        rt.engine().borrow_mut().tick(now);
        rt.drive();
        rt.publish();
        super::replica::keep_up(&rt);
        let done = rt.engine().borrow().is_done();
        if done && !was_done {
            was_done = true;
            rt.announcer().borrow_mut().completed();
        }
        if done && !keep_seeding {
            break;
        }
        if now >= next_durable {
            next_durable = now + DURABLE_EVERY;
            // Boxed: only torrents that wrote pieces get this far, so idle ones keep
            // a small future.
            Box::pin(report_durable(&rt)).await;
        }
        let due = rt.announcer().borrow_mut().poll(now);
        if let Some((url, event)) = due {
            glommio::spawn_local(announce(rt.clone(), url, event)).detach();
        }
        dial::connect_more(&rt);
        let mut sleep = nap(&rt, now, &rt.announcer().borrow());
        if durable_pending(&rt) {
            sleep = sleep.min(next_durable.saturating_sub(now).max(TICK));
        }
        if dht.is_some() {
            sleep = sleep.min(dht_asks.next().saturating_sub(now).max(TICK));
        }
        if lsd.is_some() {
            sleep = sleep.min(lsd_asks.next().saturating_sub(now).max(TICK));
        }
        rt.alarm().sleep(sleep).await;
    }
    // Boxed: its state (tracker requests) is allocated only when stopping, so the
    // future every idle torrent keeps is small.
    Box::pin(wind_down(&rt)).await;
}

/// Pieces the front end has not heard are durable (only if it listens).
fn durable_pending(rt: &TorrentRt) -> bool {
    rt.shard().events.is_some() && rt.durable().differs(rt.engine().borrow().have().count())
}

/// If pieces were written since the last report and the front end keeps resume
/// data: syncs the files, then reports the pieces written before the sync as durable.
async fn report_durable(rt: &TorrentRt) {
    let Some(events) = &rt.shard().events else {
        return;
    };
    if !durable_pending(rt) || rt.has_failed() {
        return;
    }
    let have = rt.engine().borrow().have().clone();
    // The snapshot is taken before the sync: every piece in it was written (a piece
    // joins `have` only once its write completed), so the sync makes all of it durable.
    if let Some(storage) = rt.pieces().storage().if_open() {
        if let Err(e) = storage.sync().await {
            rt.fail(TorrentFault::from(&e));
            return;
        }
    }
    let count = have.count();
    let done = rt.engine().borrow().is_done();
    let stats = rt.engine().borrow().stats(rt.now());
    let sent = events.send(SwarmEvent::Durable {
        info_hash: rt.meta().info_hash,
        have,
        files: file_stamps(rt),
        uploaded: rt.uploaded(stats.uploaded),
        downloaded: stats.downloaded,
    });
    if sent {
        rt.durable().reported(count);
        if rt.durable().take_completion(done) {
            events.send(SwarmEvent::Completed {
                info_hash: rt.meta().info_hash,
            });
        }
    }
}

/// Each file's size and mtime now, in torrent order.
fn file_stamps(rt: &TorrentRt) -> Vec<Option<FileStamp>> {
    let save_dir = rt.pieces().storage().save_dir();
    rt.layout()
        .files()
        .iter()
        .map(|f| {
            if f.pad {
                None
            } else {
                FileStamp::of(&path_under(save_dir, &f.path))
            }
        })
        .collect()
}

/// Syncs the files, says goodbye to the tracker and drops the peers.
async fn wind_down(rt: &TorrentRt) {
    // Replicas first: nothing may read the files once the torrent has stopped.
    super::replica::end_all(rt).await;
    rt.publish();
    rt.shard().scraper.forget(&rt.meta().info_hash);
    let announcer = rt.announcer();
    if !rt.has_failed() {
        if let Some(storage) = rt.pieces().storage().if_open() {
            if let Err(e) = storage.sync().await {
                rt.fail(TorrentFault::from(&e));
            }
        }
    }
    if !rt.has_failed() {
        // Whatever was written since the last report: the files are synced now.
        report_durable(rt).await;
    }
    // Tell the tracker we completed (if no tracker has heard it yet) and that we stop,
    // briefly each: exiting must not hang on a dead tracker.
    let (url, pending) = {
        let a = announcer.borrow();
        (a.current().map(str::to_string), a.pending_event())
    };
    if let Some(url) = url {
        let events = match pending {
            Event::Completed => vec![Event::Completed, Event::Stopped],
            // The tracker never heard of us: nothing to say goodbye to.
            Event::Started => vec![],
            _ => vec![Event::Stopped],
        };
        if !events.is_empty() {
            if let Turn::Go(within, _permit) = rt.shard().goodbyes.turn().await {
                let _ = glommio::timer::timeout(within, async {
                    for event in events {
                        let request = announce_request(rt, event);
                        let _ = tracker::announce(
                            &url,
                            &request,
                            &rt.shard().clock,
                            &rt.shard().trackers,
                            rt.seed(),
                        )
                        .await;
                    }
                    Ok(())
                })
                .await;
            }
        }
    }
    for key in rt.peers().keys() {
        rt.forget_peer(key);
    }
    // A stopped torrent lists no peers (the last figures were taken with them).
    rt.publish();
}

/// How long the run loop may sleep: a tick while there are peers or pieces in flight;
/// an idle torrent sleeps until its next announce or connection retry, unless rung.
fn nap(rt: &TorrentRt, now: Duration, announcer: &Announcer) -> Duration {
    // A replicated owner keeps ticking: it adds up its replicas' figures and sees the
    // torrent cool even when no peer of its own is left.
    let busy = !rt.peers().is_empty()
        || rt.is_replicated()
        || rt.book().dialling() > 0
        || rt.pieces().filling()
        || rt.engine().borrow().peer_count() > 0;
    if busy {
        return TICK;
    }
    let mut until = now + IDLE_NAP_MAX;
    if let Some(due) = announcer.next_due() {
        until = until.min(due);
    }
    if rt.engine().borrow().wants_peers() {
        if let Some(retry) = rt.book().next_retry() {
            until = until.min(retry);
        }
    }
    until.saturating_sub(now).max(TICK)
}

/// What we tell a tracker in an announce with `event`.
fn announce_request(rt: &TorrentRt, event: Event) -> Announce {
    let stats = rt.engine().borrow().stats(rt.now());
    let layout = rt.layout();
    let have = rt.engine().borrow().have().clone();
    let have_bytes: u64 = have
        .iter_ones()
        .filter_map(|p| layout.piece(p))
        .map(|p| u64::from(layout.piece_len(p)))
        .sum();
    Announce {
        info_hash: rt.meta().info_hash,
        peer_id: rt.our_id().0,
        port: rt.shard().config.port,
        uploaded: rt.uploaded(stats.uploaded),
        downloaded: stats.downloaded,
        left: layout.total_length() - have_bytes,
        event,
        num_want: Some(100),
        key: rt.seed() as u32,
        tracker_id: None,
    }
}

/// One announce, once the shard's gate lets it through; learns the peers it returns.
async fn announce(rt: Rc<TorrentRt>, url: String, event: Event) {
    let host = host_key(&url);
    // `completed` must be heard; a torrent added on its own wants peers now. A crowd
    // of `started` (a daemon resuming) waits its turn.
    let urgent = match event {
        Event::Completed => true,
        Event::Started => rt.shard().announces.lone_start(),
        _ => false,
    };
    // Leave the line if the torrent stops meanwhile: with 100,000 torrents it may be
    // long, and a paused torrent should not hold its place (or its memory) in it.
    let entered = futures_lite::future::or(
        async { Some(rt.shard().announces.enter(&host, urgent).await) },
        async {
            rt.stop_signal().stopped().await;
            None
        },
    )
    .await;
    let Some(entered) = entered else {
        rt.announcer().borrow_mut().defer(rt.now(), ANNOUNCE_DEFER);
        return;
    };
    let pass = match entered {
        Ok(pass) => pass,
        Err(full) => {
            tracing::debug!(url, %full, "announce deferred");
            rt.announcer().borrow_mut().defer(rt.now(), ANNOUNCE_DEFER);
            rt.wake();
            return;
        }
    };
    if rt.stop_signal().is_set() {
        // Stopping while in line: wind_down says goodbye if need be.
        rt.announcer().borrow_mut().defer(rt.now(), ANNOUNCE_DEFER);
        return;
    }
    let request = announce_request(&rt, event);
    let began = std::time::Instant::now();
    let result = tracker::announce(
        &url,
        &request,
        &rt.shard().clock,
        &rt.shard().trackers,
        rt.seed(),
    )
    .await;
    drop(pass);
    match &result {
        Ok(_) => rt.shard().stats.announce.observe(began.elapsed()),
        Err(e) => rt.shard().stats.announce_failed(e.failure()),
    }
    let announcer = rt.announcer();
    let now = rt.now();
    match result {
        Ok(response) => {
            tracing::debug!(url, peers = response.peers.len(), "announced");
            if let (Some(seeders), Some(leechers)) = (response.seeders, response.leechers) {
                rt.status().set_announced(seeders, leechers);
            }
            rt.shard()
                .scraper
                .want(rt.meta().info_hash, &url, rt.status());
            rt.learn(&response.peers, PeerSource::Tracker);
            let wants_peers = {
                let engine = rt.engine().borrow();
                !engine.is_done() && engine.wants_peers()
            };
            announcer
                .borrow_mut()
                .on_success(now, &response, wants_peers);
        }
        Err(e) => {
            tracing::warn!(url, error = %e, "announce failed");
            rt.emit(SwarmEvent::TrackerError {
                info_hash: rt.meta().info_hash,
                url: url.clone(),
                message: e.to_string(),
            });
            announcer.borrow_mut().on_failure(now);
        }
    }
    // The schedule moved: an idle torrent works out again how long to sleep.
    rt.wake();
}
