//! A torrent's web seeds (BEP 19) on its shard: one task per web seed, which asks the
//! engine what to fetch (`Torrent::web_seed_next`), sends range requests over one
//! kept-alive HTTP or HTTPS connection (`tls`) with up to [`PIPELINE`] requests in flight, and feeds
//! the bodies back (`Torrent::web_seed_data`) into the same piece buffers, hashing and
//! writing path (`PieceIo`, `TorrentRt::finish_piece`) as peers' blocks. Bytes count in
//! the torrent's and shard's download counters and pass its download rate limits.
//!
//! A server that closes after each response
//! (HTTP/1.0) gets one request per connection; requests sent ahead on it are sent again.
//! On any failure the engine frees the web seed's pieces for peers and says when to try
//! again; the task sleeps until then, in short naps so it ends soon after its torrent.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use ccbt_engine::http::{get_request, Part, ResponseStream};
use ccbt_engine::session::WebSeedId;
use ccbt_engine::webseed::{check_head, Fetch, Verdict, WebSeedError};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::timer::{sleep, timeout};

use super::throttle::{Direction, Meter};
use super::tls::{self, Stream};
use super::torrent::TorrentRt;
use super::tracker::{endpoint, USER_AGENT};

/// Requests in flight on one connection at most.
pub const PIPELINE: usize = 2;
/// A connect, a write or a read that takes longer fails the request.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;
/// How often a web seed with nothing to fetch (peers hold every piece left) looks again.
const IDLE_LOOK: Duration = Duration::from_secs(1);
/// The longest nap between looks at the stop flag.
const NAP_MAX: Duration = Duration::from_millis(250);

/// Adds the torrent's web seeds to its engine and starts a task for each, unless web seeds
/// are off or the torrent is complete.
pub fn start(rt: &Rc<TorrentRt>) {
    if !rt.shard().config.web_seeds || rt.engine().borrow().is_done() {
        return;
    }
    for url in rt.meta().web_seeds.clone() {
        let added = rt.engine().borrow_mut().add_web_seed(&url);
        match added {
            Ok(id) => {
                tracing::info!(url, "using web seed");
                glommio::spawn_local(run(rt.clone(), id, url)).detach();
            }
            Err(e) => tracing::warn!(url, error = %e, "web seed not used"),
        }
    }
    rt.publish();
}

/// Whether the task should end: the torrent stops, failed or is complete.
fn over(rt: &TorrentRt) -> bool {
    rt.stop_signal().is_set() || rt.has_failed() || rt.engine().borrow().is_done()
}

/// Sleeps `wait`, waking early if the torrent stops.
async fn nap(rt: &TorrentRt, wait: Duration) {
    let mut left = wait;
    while !left.is_zero() && !over(rt) {
        let step = left.min(NAP_MAX);
        sleep(step).await;
        left -= step;
    }
}

/// One web seed's life: plan, fetch, back off, until the torrent no longer needs it.
async fn run(rt: Rc<TorrentRt>, id: WebSeedId, url: String) {
    let mut conn: Option<Conn> = None;
    let mut queue: VecDeque<Fetch> = VecDeque::new();
    let mut meter = rt.meter(Direction::Download);
    while !over(&rt) {
        let now = rt.now();
        let Some(ready) = rt.engine().borrow().web_seed_ready_at(now, id) else {
            tracing::debug!(url, "web seed dropped: its task ends");
            break;
        };
        if ready > now {
            nap(&rt, ready - now).await;
            continue;
        }
        let result = fetch_all(&rt, id, &mut conn, &mut queue, &mut meter).await;
        rt.drive();
        match result {
            Ok(true) => {}
            Ok(false) => {
                // Nothing to fetch for now: an idle connection would only be closed by
                // the server meanwhile.
                conn = None;
                nap(&rt, IDLE_LOOK).await;
            }
            Err(e) => {
                conn = None;
                queue.clear();
                let until = rt
                    .engine()
                    .borrow_mut()
                    .web_seed_failed(rt.now(), id, e.clone());
                let retry_in = until.map(|u| u.saturating_sub(rt.now()));
                tracing::info!(url, error = %e, ?retry_in, "web seed failed; backing off");
                rt.drive();
            }
        }
        rt.publish();
    }
    rt.publish();
}

/// A connection to one server.
struct Conn {
    stream: Stream,
    to: SocketAddr,
    /// The host its TLS session verified (an https URL's), or none for plain HTTP.
    tls_host: Option<String>,
    http: ResponseStream,
    /// Requests of `queue`'s front sent on it and not yet answered.
    sent: usize,
    /// The server kept the connection alive after a response: it may be sent several.
    pipelines: bool,
}

/// Fetches what the engine plans until it has nothing more for now. `Ok(false)`: nothing
/// was planned (wait a little).
async fn fetch_all(
    rt: &Rc<TorrentRt>,
    id: WebSeedId,
    conn: &mut Option<Conn>,
    queue: &mut VecDeque<Fetch>,
    meter: &mut Meter,
) -> Result<bool, WebSeedError> {
    let mut did = false;
    loop {
        if over(rt)
            || rt
                .engine()
                .borrow()
                .web_seed_ready_at(rt.now(), id)
                .is_none()
        {
            return Ok(true);
        }
        if queue.len() < PIPELINE {
            let more = rt.engine().borrow_mut().web_seed_next(rt.now(), id);
            queue.extend(more);
        }
        let Some(front) = queue.front() else {
            return Ok(did);
        };
        did = true;
        let Some(url) = front.url.clone() else {
            // A pad file: zeros we supply.
            let front = queue.pop_front().expect("front exists");
            feed_zeros(rt, id, &front);
            continue;
        };
        let to = resolve(rt, &url).await?;
        let tls_host = url::Url::parse(&url).ok().and_then(|u| tls::tls_host(&u));
        if conn
            .as_ref()
            .is_some_and(|c| c.to != to || c.tls_host != tls_host)
        {
            *conn = None;
        }
        if conn.is_none() {
            let stream = tls::connect(to, tls_host.as_deref(), IO_TIMEOUT)
                .await
                .map_err(|e| WebSeedError::Io(e.to_string()))?;
            let max_body = rt
                .layout()
                .files()
                .iter()
                .map(|f| f.length)
                .max()
                .unwrap_or(0);
            *conn = Some(Conn {
                stream,
                to,
                tls_host,
                http: ResponseStream::new(max_body),
                sent: 0,
                pipelines: false,
            });
        }
        let c = conn.as_mut().expect("connected above");
        send_ahead(rt, c, queue).await?;
        let front = queue.front_mut().expect("front exists");
        match answer(rt, id, c, front, meter).await? {
            Answered::Done { keep } => {
                queue.pop_front();
                c.sent -= 1;
                if !keep {
                    // Requests sent ahead are lost with the connection: sent again.
                    *conn = None;
                }
            }
            Answered::Redirected(to) => {
                front.url = Some(to);
                front.redirects += 1;
                *conn = None;
            }
        }
    }
}

/// Where `url` points (http or https).
async fn resolve(rt: &TorrentRt, url: &str) -> Result<SocketAddr, WebSeedError> {
    endpoint(url, &rt.shard().trackers)
        .await
        .map_err(|e| WebSeedError::Io(e.to_string()))
}

/// Sends the queue's next plain requests to the same server, up to [`PIPELINE`] in
/// flight (one until the server has shown it keeps connections alive).
async fn send_ahead(
    rt: &TorrentRt,
    c: &mut Conn,
    queue: &VecDeque<Fetch>,
) -> Result<(), WebSeedError> {
    let depth = if c.pipelines { PIPELINE } else { 1 };
    while c.sent < depth.min(queue.len()) {
        let fetch = &queue[c.sent];
        let Some(url) = &fetch.url else { break };
        let same_tls = url::Url::parse(url).ok().and_then(|u| tls::tls_host(&u)) == c.tls_host;
        if c.sent > 0 && (!same_tls || resolve(rt, url).await? != c.to) {
            break;
        }
        let parsed = url::Url::parse(url).map_err(|_| WebSeedError::BadUrl(url.clone()))?;
        let bytes = get_request(&parsed, USER_AGENT, Some(fetch.range()));
        match timeout(IO_TIMEOUT, async { Ok(c.stream.write_all(&bytes).await) }).await {
            Ok(Ok(())) => c.sent += 1,
            Ok(Err(e)) => return Err(WebSeedError::Io(e.to_string())),
            Err(_) => return Err(WebSeedError::Io("write timed out".into())),
        }
    }
    Ok(())
}

enum Answered {
    /// The fetch's bytes are in. `keep`: the connection may carry the next request.
    Done {
        keep: bool,
    },
    Redirected(String),
}

/// Reads the response to `fetch` (the oldest request sent on `c`) and delivers its bytes.
async fn answer(
    rt: &Rc<TorrentRt>,
    id: WebSeedId,
    c: &mut Conn,
    fetch: &Fetch,
    meter: &mut Meter,
) -> Result<Answered, WebSeedError> {
    let mut buf = vec![0u8; READ_CHUNK];
    let mut verdict: Option<(u64, bool)> = None;
    // A 200 to a request for part of the file: the server ignores `Range`.
    let mut whole_file = false;
    // Only a response whose bytes all came counts as a success (resets the back-off).
    let succeeded = |whole_file| rt.engine().borrow_mut().web_seed_succeeded(id, whole_file);
    // Body bytes seen so far, and how many of the fetch's were delivered.
    let mut body = 0u64;
    let want = fetch.segment.len;
    loop {
        // Parse what is buffered before reading more.
        let mut redirect = None;
        let mut end = None;
        while let Some(part) = c.http.poll()? {
            match part {
                Part::Head(head) => match check_head(fetch, &head) {
                    Verdict::Take { skip, close_after } => {
                        whole_file = head.status == 200
                            && fetch.range() != (0, fetch.file_len.saturating_sub(1));
                        verdict = Some((skip, close_after));
                    }
                    Verdict::Redirect(to) => redirect = Some(to),
                    Verdict::Fail(e) => return Err(e),
                },
                Part::Body(bytes) => {
                    let Some((skip, _)) = verdict else {
                        // A redirect's or an error's body: not ours.
                        continue;
                    };
                    let from = skip.saturating_sub(body).min(bytes.len() as u64) as usize;
                    let upto = (skip + want).saturating_sub(body).min(bytes.len() as u64) as usize;
                    if from < upto {
                        let global = fetch.segment.global + (body + from as u64 - skip);
                        deliver(rt, id, global, &bytes[from..upto]);
                    }
                    body += bytes.len() as u64;
                    let close_after = verdict.is_some_and(|(_, close)| close);
                    if body >= skip + want && close_after {
                        // The rest of a whole file (or a wider range): not read.
                        succeeded(whole_file);
                        return Ok(Answered::Done { keep: false });
                    }
                    if body > skip + want {
                        // A chunked body that runs past the range its head promised.
                        return Err(WebSeedError::WrongRange(
                            "a body longer than the range".into(),
                        ));
                    }
                }
                Part::End { keep_alive } => {
                    end = Some(keep_alive);
                    break;
                }
            }
        }
        if let Some(keep_alive) = end {
            if let Some(to) = redirect {
                return Ok(Answered::Redirected(to));
            }
            let Some((skip, _)) = verdict else {
                return Err(WebSeedError::Http(ccbt_engine::http::HttpError::Truncated));
            };
            let got = body.saturating_sub(skip);
            if got < want {
                return Err(WebSeedError::ShortBody {
                    missing: want - got,
                });
            }
            c.pipelines |= keep_alive;
            succeeded(whole_file);
            return Ok(Answered::Done { keep: keep_alive });
        }
        if let Some(to) = redirect {
            // Its body is not waited for.
            return Ok(Answered::Redirected(to));
        }
        if over(rt) {
            return Ok(Answered::Done { keep: false });
        }
        rt.pieces().backlog_room().await;
        let n = match timeout(IO_TIMEOUT, async { Ok(c.stream.read(&mut buf).await) }).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => return Err(WebSeedError::Io(e.to_string())),
            Err(_) => return Err(WebSeedError::Io("read timed out".into())),
        };
        if n == 0 {
            // The server closed: fine only if that ends the body and it was all there.
            let ended = matches!(c.http.on_eof()?, Some(Part::End { .. }));
            let got = verdict.map_or(0, |(skip, _)| body.saturating_sub(skip));
            if ended && verdict.is_some() && got >= want {
                succeeded(whole_file);
                return Ok(Answered::Done { keep: false });
            }
            return Err(WebSeedError::ShortBody {
                missing: want.saturating_sub(got),
            });
        }
        c.http.push(&buf[..n]);
        rt.shard().stats.downloaded(n as u64);
        if !meter.spend(n as u64, || !over(rt)).await {
            return Ok(Answered::Done { keep: false });
        }
    }
}

/// Hands body bytes to the engine and copies the wanted ones into piece buffers.
fn deliver(rt: &Rc<TorrentRt>, id: WebSeedId, global: u64, bytes: &[u8]) {
    let data = rt
        .engine()
        .borrow_mut()
        .web_seed_data(rt.now(), id, global, bytes);
    for s in &data.stores {
        rt.pieces()
            .store_block(s.piece, s.offset, &bytes[s.at..s.at + s.len]);
    }
    for piece in data.complete {
        rt.finish_piece(piece);
    }
}

/// A pad file's bytes: zeros, block by block.
fn feed_zeros(rt: &Rc<TorrentRt>, id: WebSeedId, fetch: &Fetch) {
    let zeros = [0u8; 16 * 1024];
    let mut done = 0u64;
    while done < fetch.segment.len {
        let n = (fetch.segment.len - done).min(zeros.len() as u64) as usize;
        deliver(rt, id, fetch.segment.global + done, &zeros[..n]);
        done += n as u64;
    }
}
