//! Login sessions: the random `SID` cookie `auth/login` hands out, and when it was last
//! used.
//!
//! Bounds: at most [`MAX_SESSIONS`] sessions; a session unused for [`SESSION_IDLE`]
//! (qBittorrent's default session timeout) is gone. A login when the store is full
//! drops the session unused the longest, so logins can never be refused for lack of room
//! and a flood of logins only pushes out idle sessions.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

pub const MAX_SESSIONS: usize = 1_024;
pub const SESSION_IDLE: Duration = Duration::from_secs(3_600);
/// The cookie's name, as qBittorrent up to 5.1 calls it.
pub const COOKIE: &str = "SID";

#[derive(Default)]
pub struct Sessions {
    last_used: Mutex<HashMap<String, Instant>>,
}

impl Sessions {
    /// A new session's id.
    pub fn create(&self) -> std::io::Result<String> {
        self.create_at(Instant::now())
    }

    fn create_at(&self, now: Instant) -> std::io::Result<String> {
        let id = random_id()?;
        let mut map = self.last_used.lock().expect("sessions lock");
        map.retain(|_, used| now.duration_since(*used) < SESSION_IDLE);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) {
                map.remove(&oldest);
            }
        }
        map.insert(id.clone(), now);
        Ok(id)
    }

    /// Whether `id` is a live session; using it keeps it alive.
    pub fn touch(&self, id: &str) -> bool {
        self.touch_at(id, Instant::now())
    }

    fn touch_at(&self, id: &str, now: Instant) -> bool {
        let mut map = self.last_used.lock().expect("sessions lock");
        match map.get_mut(id) {
            Some(used) if now.duration_since(*used) < SESSION_IDLE => {
                *used = now;
                true
            }
            Some(_) => {
                map.remove(id);
                false
            }
            None => false,
        }
    }

    pub fn end(&self, id: &str) {
        self.last_used.lock().expect("sessions lock").remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.last_used.lock().expect("sessions lock").len()
    }
}

/// 24 bytes from the kernel's CSPRNG, base64url: 32 characters, like qBittorrent's SIDs.
fn random_id() -> std::io::Result<String> {
    let mut bytes = [0u8; 24];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// The `SID` of a request's `Cookie` headers.
pub fn cookie_of(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_are_random_and_bounded() {
        let s = Sessions::default();
        let first = s.create().unwrap();
        assert_eq!(first.len(), 32);
        assert!(s.touch(&first));
        assert!(!s.touch("forged"));
        for _ in 0..MAX_SESSIONS {
            s.create().unwrap();
        }
        assert_eq!(s.len(), MAX_SESSIONS);
        assert!(!s.touch(&first), "the least recently used went first");
        let last = s.create().unwrap();
        s.end(&last);
        assert!(!s.touch(&last));
    }

    #[test]
    fn an_idle_session_expires_and_use_keeps_one_alive() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let idle = s.create_at(t0).unwrap();
        let used = s.create_at(t0).unwrap();
        let later = t0 + SESSION_IDLE / 2;
        assert!(s.touch_at(&used, later));
        let past = t0 + SESSION_IDLE + Duration::from_secs(1);
        assert!(
            !s.touch_at(&idle, past),
            "idle for longer than SESSION_IDLE"
        );
        assert!(s.touch_at(&used, past), "used half-way: still alive");
        assert_eq!(s.len(), 1, "the expired one is forgotten");
    }

    #[test]
    fn the_sid_cookie_is_found_among_others() {
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "a=1; SID=abc ; b=2".parse().unwrap());
        assert_eq!(cookie_of(&h), Some("abc"));
        h.clear();
        h.append("cookie", "XSID=zz".parse().unwrap());
        assert_eq!(cookie_of(&h), None);
    }
}
