//! One torrent's announcing: which tracker, which event, and when — built from the tier
//! list (BEP 12) and the schedule.
//!
//! Policy: a failed tracker gives way at once to the next one in the list; only after every
//! tracker failed in a row does the torrent back off. An event (`started`, `completed`) is
//! kept until some tracker has heard it. One announce is in flight at a time.

use std::time::Duration;

use super::{AnnounceResponse, AnnounceSchedule, Event, TrackerList};

#[derive(Debug, Clone)]
pub struct Announcer {
    list: TrackerList,
    schedule: AnnounceSchedule,
    event: Event,
    in_flight: bool,
    failures_in_row: usize,
    seed: u64,
}

impl Announcer {
    /// `tiers` as the torrent lists them; the first announce (`started`) is due at once.
    pub fn new(tiers: Vec<Vec<String>>, seed: u64) -> Self {
        Announcer {
            list: TrackerList::new(tiers, seed),
            schedule: AnnounceSchedule::new(seed),
            event: Event::Started,
            in_flight: false,
            failures_in_row: 0,
            seed,
        }
    }

    /// The user changed the torrent's trackers: announce to the new list at once. Trackers
    /// that never heard of us get `started` (unless `completed` is still to be told); an
    /// announce in flight to an old tracker still reports back, harmlessly.
    pub fn set_tiers(&mut self, tiers: Vec<Vec<String>>) {
        self.list = TrackerList::new(tiers, self.seed);
        self.failures_in_row = 0;
        if self.event == Event::None {
            self.event = Event::Started;
        }
        self.schedule.announce_now();
    }

    /// The download completed: tell a tracker now.
    pub fn completed(&mut self) {
        self.event = Event::Completed;
        self.schedule.announce_now();
    }

    /// Announce again as soon as none is in flight (a user's "reannounce"), keeping the
    /// pending event.
    pub fn reannounce(&mut self) {
        self.schedule.announce_now();
    }

    /// The announce to send now, if one is due: tracker URL and event. The caller reports
    /// back with [`Announcer::on_success`] or [`Announcer::on_failure`].
    pub fn poll(&mut self, now: Duration) -> Option<(String, Event)> {
        if self.in_flight || !self.schedule.is_due(now) {
            return None;
        }
        let url = self.list.current()?.to_string();
        self.in_flight = true;
        Some((url, self.event))
    }

    /// `wants_peers`: the torrent is incomplete and short of peers (see
    /// [`AnnounceSchedule::on_success`]).
    pub fn on_success(&mut self, now: Duration, response: &AnnounceResponse, wants_peers: bool) {
        self.in_flight = false;
        self.event = Event::None;
        self.failures_in_row = 0;
        self.list.on_success();
        self.schedule.on_success(now, response, wants_peers);
    }

    /// The announce could not even be tried (the shard's line was full): ask again after
    /// `delay`, with the same tracker and event, and no failure counted.
    pub fn defer(&mut self, now: Duration, delay: Duration) {
        self.in_flight = false;
        self.schedule.defer_until(now.saturating_add(delay));
    }

    pub fn on_failure(&mut self, now: Duration) {
        self.in_flight = false;
        self.list.on_failure();
        self.failures_in_row += 1;
        if self.failures_in_row < self.list.len() {
            self.schedule.announce_now();
        } else {
            self.failures_in_row = 0;
            self.schedule.on_failure(now);
        }
    }

    /// When [`Announcer::poll`] next has an announce to give: `None` while one is in flight
    /// or when there is no tracker (nothing is due until something changes).
    pub fn next_due(&self) -> Option<Duration> {
        if self.in_flight || self.list.current().is_none() {
            return None;
        }
        Some(self.schedule.next())
    }

    pub fn is_in_flight(&self) -> bool {
        self.in_flight
    }

    /// An event no tracker has heard yet.
    pub fn pending_event(&self) -> Event {
        self.event
    }

    /// The tracker to tell we are stopping.
    pub fn current(&self) -> Option<&str> {
        self.list.current()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(interval: u32) -> AnnounceResponse {
        AnnounceResponse {
            interval,
            min_interval: None,
            peers: Vec::new(),
            seeders: None,
            leechers: None,
            warning: None,
            tracker_id: None,
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn started_is_kept_until_a_tracker_hears_it_and_failures_try_the_next_tracker() {
        let tiers = vec![
            vec!["http://a/announce".into()],
            vec!["http://b/announce".into()],
        ];
        let mut a = Announcer::new(tiers, 1);
        let (first, event) = a.poll(secs(0)).unwrap();
        assert_eq!(event, Event::Started);
        assert!(a.poll(secs(0)).is_none(), "one at a time");
        a.on_failure(secs(1));
        let (second, event) = a.poll(secs(1)).expect("the next tracker, at once");
        assert_ne!(first, second);
        assert_eq!(event, Event::Started);
        a.on_failure(secs(2));
        assert!(a.poll(secs(2)).is_none(), "every tracker failed: back off");
        assert!(a.poll(secs(30)).is_some());
        a.on_success(secs(30), &ok(1800), false);
        assert!(a.poll(secs(31)).is_none());
        a.completed();
        assert_eq!(a.poll(secs(32)).unwrap().1, Event::Completed);
        a.on_success(secs(32), &ok(1800), false);
        assert_eq!(a.pending_event(), Event::None);
        assert!(a.poll(secs(32 + 2 * 1800)).is_some());
    }

    #[test]
    fn new_trackers_hear_started_at_once_and_an_untold_completed_stays() {
        let mut a = Announcer::new(vec![vec!["http://old/announce".into()]], 1);
        a.poll(secs(0)).unwrap();
        a.on_success(secs(0), &ok(1800), false);
        assert!(
            a.poll(secs(10)).is_none(),
            "the next announce is half an hour away"
        );
        a.set_tiers(vec![vec!["http://new/announce".into()]]);
        assert_eq!(
            a.poll(secs(10)),
            Some(("http://new/announce".to_string(), Event::Started))
        );
        a.on_success(secs(10), &ok(1800), false);
        a.completed();
        a.set_tiers(vec![vec!["http://third/announce".into()]]);
        assert_eq!(a.poll(secs(11)).unwrap().1, Event::Completed);
        a.on_failure(secs(11));
        a.set_tiers(Vec::new());
        assert!(a.poll(secs(12)).is_none(), "no tracker left");
    }

    #[test]
    fn no_trackers_means_no_announces() {
        let mut a = Announcer::new(Vec::new(), 1);
        assert!(a.poll(secs(0)).is_none());
        assert!(a.current().is_none());
        assert_eq!(a.next_due(), None);
    }

    #[test]
    fn next_due_follows_the_schedule_and_waits_while_in_flight() {
        let mut a = Announcer::new(vec![vec!["http://a/announce".into()]], 1);
        assert_eq!(a.next_due(), Some(secs(0)));
        a.poll(secs(0)).unwrap();
        assert_eq!(a.next_due(), None);
        a.on_success(secs(5), &ok(1800), false);
        let due = a.next_due().unwrap();
        assert!(due >= secs(1805) && due < secs(3605), "{due:?}");
    }
}
