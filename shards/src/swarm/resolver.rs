//! Tracker host names resolved off the shard thread, with a bounded per-shard cache.
//!
//! `getaddrinfo` blocks, sometimes for seconds (a dead DNS server, a name that times
//! out). Called on a shard it would freeze every peer of that core, so lookups go to
//! [`RESOLVER_THREADS`] helper threads per shard over a bounded queue
//! ([`QUEUE_LEN`]; past it a lookup fails at once with [`ResolveError::Busy`] and the
//! announce is retried like any failed one). The shard awaits the answer as a future.
//!
//! Answers are cached per shard: [`CACHE_MAX`] names at most, [`TTL`] for a good answer
//! (we cannot see the DNS TTL through `getaddrinfo`), [`NEGATIVE_TTL`] for a failure so a
//! dead name does not get a lookup per torrent. Concurrent lookups of one name share one
//! request. Tests inject a [`Resolve`] of their own (a slow one, say).

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use futures_channel::oneshot;
use thiserror::Error;

use super::clock::Clock;

/// Names cached per shard, at most; when full, an expired entry goes, else the one that
/// expires soonest.
pub const CACHE_MAX: usize = 1024;
/// How long a good answer is kept.
pub const TTL: Duration = Duration::from_secs(5 * 60);
/// How long a failed lookup is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);
/// Lookups waiting for a helper thread, per shard.
pub const QUEUE_LEN: usize = 64;
/// Helper threads per shard: one slow name holds one; the other goes on.
pub const RESOLVER_THREADS: usize = 2;
/// Longest the shard waits for one lookup (the helper may go on; its answer is dropped).
pub const LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Turns a host name into addresses; blocking is fine, it runs on a helper thread.
pub trait Resolve: Send + Sync + 'static {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>>;
}

/// The system's resolver (`getaddrinfo`).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// The resolver a swarm uses: the system's unless a test says otherwise.
#[derive(Clone)]
pub struct Resolver(pub Arc<dyn Resolve>);

impl Default for Resolver {
    fn default() -> Self {
        Resolver(Arc::new(SystemResolver))
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum ResolveError {
    #[error("cannot resolve `{host}`: {reason}")]
    Failed { host: String, reason: String },
    #[error("`{0}` has no address")]
    NoAddress(String),
    #[error("too many host name lookups waiting; try again later")]
    Busy,
    #[error("looking up `{0}` took longer than {LOOKUP_TIMEOUT:?}")]
    Timeout(String),
}

type Key = (String, u16);
type Answer = Result<SocketAddr, ResolveError>;

struct Job {
    host: String,
    port: u16,
    reply: oneshot::Sender<Answer>,
}

/// A shard's cache and its helper threads; the threads end when it is dropped.
pub struct DnsCache {
    jobs: crossbeam::channel::Sender<Job>,
    clock: Clock,
    /// Answers and when they expire; at most [`CACHE_MAX`].
    entries: RefCell<HashMap<Key, (Answer, Duration)>>,
    /// Who else waits for a lookup in flight; at most [`QUEUE_LEN`] names.
    waiting: RefCell<HashMap<Key, Vec<oneshot::Sender<Answer>>>>,
}

impl DnsCache {
    pub fn new(resolver: Resolver, clock: Clock, name: &str) -> std::io::Result<DnsCache> {
        let (jobs, rx) = crossbeam::channel::bounded::<Job>(QUEUE_LEN);
        for i in 0..RESOLVER_THREADS {
            let rx = rx.clone();
            let resolver = resolver.0.clone();
            std::thread::Builder::new()
                .name(format!("{name}-dns{i}"))
                .spawn(move || {
                    for job in rx {
                        let answer = resolve_one(&*resolver, &job.host, job.port);
                        let _ = job.reply.send(answer);
                    }
                })?;
        }
        Ok(DnsCache {
            jobs,
            clock,
            entries: RefCell::default(),
            waiting: RefCell::default(),
        })
    }

    /// The first address of `host:port`; an IP literal at once, a name from the cache or
    /// a helper thread. Never blocks the calling thread.
    pub async fn lookup(self: &Rc<Self>, host: &str, port: u16) -> Answer {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(SocketAddr::new(ip, port));
        }
        let key = (host.to_ascii_lowercase(), port);
        let now = self.clock.now();
        if let Some((answer, until)) = self.entries.borrow().get(&key) {
            if *until > now {
                return answer.clone();
            }
        }
        let (tx, rx) = oneshot::channel();
        let first = {
            let mut waiting = self.waiting.borrow_mut();
            if let Some(list) = waiting.get_mut(&key) {
                list.push(tx);
                false
            } else if waiting.len() >= QUEUE_LEN {
                return Err(ResolveError::Busy);
            } else {
                waiting.insert(key.clone(), vec![tx]);
                true
            }
        };
        if first {
            // A task of its own, so the other waiters get their answer even if this
            // caller gives up (its announce timed out, its torrent stopped).
            let cache = self.clone();
            glommio::spawn_local(async move {
                let answer = cache.ask_helper(&key).await;
                cache.remember(&key, &answer);
                for tx in cache.waiting.borrow_mut().remove(&key).unwrap_or_default() {
                    let _ = tx.send(answer.clone());
                }
            })
            .detach();
        }
        rx.await.unwrap_or(Err(ResolveError::Busy))
    }

    async fn ask_helper(&self, key: &Key) -> Answer {
        let (tx, rx) = oneshot::channel();
        let job = Job {
            host: key.0.clone(),
            port: key.1,
            reply: tx,
        };
        if self.jobs.try_send(job).is_err() {
            return Err(ResolveError::Busy);
        }
        match glommio::timer::timeout(LOOKUP_TIMEOUT, async { Ok(rx.await) }).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ResolveError::Busy),
            Err(_) => Err(ResolveError::Timeout(key.0.clone())),
        }
    }

    fn remember(&self, key: &Key, answer: &Answer) {
        if matches!(answer, Err(ResolveError::Busy)) {
            return;
        }
        let now = self.clock.now();
        let ttl = if answer.is_ok() { TTL } else { NEGATIVE_TTL };
        let mut entries = self.entries.borrow_mut();
        if entries.len() >= CACHE_MAX && !entries.contains_key(key) {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= CACHE_MAX {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone());
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(key.clone(), (answer.clone(), now + ttl));
    }

    /// Names cached now (for tests of the bound).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.borrow().len()
    }
}

fn resolve_one(resolver: &dyn Resolve, host: &str, port: u16) -> Answer {
    let addrs = resolver
        .resolve(host, port)
        .map_err(|e| ResolveError::Failed {
            host: host.to_string(),
            reason: e.to_string(),
        })?;
    // Prefer IPv4: most trackers listen there, and our UDP socket family follows it.
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| ResolveError::NoAddress(host.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Instant;

    /// Answers `slow.test` after 3 s, `fast.test` at once, and fails anything else;
    /// counts its calls.
    struct Scripted(AtomicUsize);

    impl Resolve for Scripted {
        fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
            self.0.fetch_add(1, Ordering::SeqCst);
            match host {
                "slow.test" => {
                    std::thread::sleep(Duration::from_secs(3));
                    Ok(vec![SocketAddr::from(([127, 0, 0, 2], port))])
                }
                "fast.test" => Ok(vec![SocketAddr::from(([127, 0, 0, 3], port))]),
                _ => Err(std::io::Error::other("no such name")),
            }
        }
    }

    #[test]
    fn a_slow_name_does_not_block_the_shard_and_answers_are_cached() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let calls = Arc::new(Scripted(AtomicUsize::new(0)));
                let cache =
                    Rc::new(DnsCache::new(Resolver(calls.clone()), Clock::start(), "t").unwrap());
                // A ticker proves the thread keeps running while the slow name resolves.
                let ticks = Rc::new(std::cell::Cell::new(0u32));
                let t = ticks.clone();
                let ticker = glommio::spawn_local(async move {
                    loop {
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                        t.set(t.get() + 1);
                    }
                });
                let started = Instant::now();
                let slow: Vec<_> = (0..50)
                    .map(|_| {
                        let c = cache.clone();
                        glommio::spawn_local(async move { c.lookup("slow.test", 80).await })
                    })
                    .collect();
                glommio::timer::sleep(Duration::from_millis(50)).await;
                // Meanwhile a fast name answers at once, on the second helper.
                let fast = cache.lookup("fast.test", 80).await.unwrap();
                assert_eq!(fast, SocketAddr::from(([127, 0, 0, 3], 80)));
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "fast waited for slow"
                );
                for s in slow {
                    assert_eq!(s.await.unwrap(), SocketAddr::from(([127, 0, 0, 2], 80)));
                }
                let waited = started.elapsed();
                assert!(waited >= Duration::from_secs(3));
                // 10 ms ticks over 3 s: a blocked shard would manage none or one; a
                // loaded machine still gives dozens.
                assert!(
                    ticks.get() >= 30,
                    "the shard kept serving: {} ticks",
                    ticks.get()
                );
                assert_eq!(calls.0.load(Ordering::SeqCst), 2, "50 waiters, one lookup");
                // Cached now: no new call, no wait.
                let t0 = Instant::now();
                cache.lookup("SLOW.test", 80).await.unwrap();
                assert!(t0.elapsed() < Duration::from_millis(100));
                assert_eq!(calls.0.load(Ordering::SeqCst), 2);
                // A failure is cached too, and IP literals never ask.
                assert!(cache.lookup("nope.test", 80).await.is_err());
                assert!(cache.lookup("nope.test", 80).await.is_err());
                assert_eq!(calls.0.load(Ordering::SeqCst), 3);
                assert_eq!(
                    cache.lookup("10.1.2.3", 6969).await.unwrap(),
                    SocketAddr::from(([10, 1, 2, 3], 6969))
                );
                assert_eq!(
                    cache.lookup("[::1]", 1).await.unwrap(),
                    "[::1]:1".parse().unwrap()
                );
                drop(ticker);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn the_cache_is_bounded() {
        struct Any;
        impl Resolve for Any {
            fn resolve(&self, _: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
                Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
            }
        }
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let cache =
                    Rc::new(DnsCache::new(Resolver(Arc::new(Any)), Clock::start(), "t").unwrap());
                for i in 0..CACHE_MAX + 100 {
                    cache.lookup(&format!("h{i}.test"), 80).await.unwrap();
                }
                assert_eq!(cache.len(), CACHE_MAX);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
