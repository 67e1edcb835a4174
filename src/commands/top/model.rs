//! What `top` shows and how keys change it, without a terminal: the last data fetched,
//! whether the daemon answers, the sort order, the filter and the selection. The renderer
//! only reads it; tests drive it with key events and updates.

use std::cmp::Ordering;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::native_api::wire::{Action, Shard, Stats, Torrent};

/// Characters a filter holds at most (more typing is ignored).
pub const FILTER_CHARS_MAX: usize = 128;
/// Rows a Page Up / Page Down moves.
pub const PAGE_ROWS: usize = 10;

/// One fetch's worth of data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct View {
    pub torrents: Vec<Torrent>,
    pub shards: Vec<Shard>,
    pub stats: Stats,
}

/// What the fetcher reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    /// The torrents changed (or this is the first answer): all of them, and the figures.
    Fetched(Box<View>),
    /// The torrents did not change; the shards' and the session's figures are these.
    Figures { shards: Vec<Shard>, stats: Stats },
    /// The daemon did not answer (or refused); it is asked again next round.
    Failed(String),
    /// A command's outcome, to show on the status line.
    Acted(String),
}

/// Whether the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Connected,
    /// The last fetch failed with this reason; the last data fetched stays on screen.
    Disconnected(String),
}

/// A command for the daemon, chosen by a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub hash: String,
    pub name: String,
    pub action: Action,
}

/// The columns, in the order `s` cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    Name,
    State,
    Progress,
    Down,
    Up,
    Peers,
    Ratio,
}

impl Column {
    pub const ALL: [Column; 7] = [
        Column::Name,
        Column::State,
        Column::Progress,
        Column::Down,
        Column::Up,
        Column::Peers,
        Column::Ratio,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Column::Name => "Name",
            Column::State => "State",
            Column::Progress => "Done",
            Column::Down => "Down",
            Column::Up => "Up",
            Column::Peers => "Peers",
            Column::Ratio => "Ratio",
        }
    }

    fn step(self, by: isize) -> Column {
        let n = Column::ALL.len() as isize;
        let i = Column::ALL.iter().position(|&c| c == self).unwrap_or(0) as isize;
        Column::ALL[(i + by).rem_euclid(n) as usize]
    }

    fn compare(self, a: &Torrent, b: &Torrent) -> Ordering {
        let by_float = |x: f64, y: f64| x.partial_cmp(&y).unwrap_or(Ordering::Equal);
        match self {
            Column::Name => Ordering::Equal,
            Column::State => a.state.cmp(&b.state),
            Column::Progress => by_float(a.progress, b.progress),
            Column::Down => a.download_rate.cmp(&b.download_rate),
            Column::Up => a.upload_rate.cmp(&b.upload_rate),
            Column::Peers => a.peers.cmp(&b.peers),
            Column::Ratio => by_float(a.ratio, b.ratio),
        }
    }
}

pub struct Model {
    /// The daemon's address, for the header.
    pub url: String,
    pub link: Link,
    /// The last data fetched (kept while disconnected).
    pub view: View,
    pub sort: Column,
    pub reverse: bool,
    /// Torrents whose name contains it (case-insensitive) are shown.
    pub filter: String,
    /// Keys go to the filter text.
    pub editing_filter: bool,
    /// The selected torrent's hash: the selection follows it when rows move.
    selected: Option<String>,
    /// The last command's outcome, or a hint.
    pub status: Option<String>,
    pub quit: bool,
}

impl Model {
    pub fn new(url: &str) -> Model {
        Model {
            url: url.to_string(),
            link: Link::Connecting,
            view: View::default(),
            sort: Column::Name,
            reverse: false,
            filter: String::new(),
            editing_filter: false,
            selected: None,
            status: None,
            quit: false,
        }
    }

    pub fn update(&mut self, update: Update) {
        match update {
            Update::Fetched(view) => {
                self.view = *view;
                self.link = Link::Connected;
            }
            Update::Figures { shards, stats } => {
                self.view.shards = shards;
                self.view.stats = stats;
                self.link = Link::Connected;
            }
            Update::Failed(reason) => self.link = Link::Disconnected(reason),
            Update::Acted(outcome) => self.status = Some(outcome),
        }
    }

    /// The torrents shown, filtered and in order.
    pub fn rows(&self) -> Vec<&Torrent> {
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&Torrent> = self
            .view
            .torrents
            .iter()
            .filter(|t| needle.is_empty() || t.name.to_lowercase().contains(&needle))
            .collect();
        rows.sort_by(|a, b| {
            let primary = self.sort.compare(a, b);
            let primary = if self.reverse {
                primary.reverse()
            } else {
                primary
            };
            let by_name = a.name.cmp(&b.name).then_with(|| a.hash.cmp(&b.hash));
            primary.then(if self.sort == Column::Name && self.reverse {
                by_name.reverse()
            } else {
                by_name
            })
        });
        rows
    }

    /// The selected row's index in [`Model::rows`]: the selected torrent's, or the
    /// first row when it is not shown.
    pub fn selection(&self, rows: &[&Torrent]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        Some(
            self.selected
                .as_ref()
                .and_then(|h| rows.iter().position(|t| &t.hash == h))
                .unwrap_or(0),
        )
    }

    pub fn selected_torrent(&self) -> Option<&Torrent> {
        let rows = self.rows();
        self.selection(&rows).map(|i| rows[i])
    }

    /// Applies a key; returns the command it asks of the daemon, if any.
    pub fn key(&mut self, key: KeyEvent) -> Option<Command> {
        if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
            self.quit = true;
            return None;
        }
        if self.editing_filter {
            match key.code {
                KeyCode::Enter => self.editing_filter = false,
                KeyCode::Esc => {
                    self.editing_filter = false;
                    self.filter.clear();
                }
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) if self.filter.chars().count() < FILTER_CHARS_MAX => {
                    self.filter.push(c)
                }
                _ => {}
            }
            return None;
        }
        match key.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Esc if !self.filter.is_empty() => self.filter.clear(),
            KeyCode::Char('/') => {
                self.editing_filter = true;
                self.status = None;
            }
            KeyCode::Char('s') => self.sort = self.sort.step(1),
            KeyCode::Char('S') => self.sort = self.sort.step(-1),
            KeyCode::Char('r') => self.reverse = !self.reverse,
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::PageDown => self.move_selection(PAGE_ROWS as isize),
            KeyCode::PageUp => self.move_selection(-(PAGE_ROWS as isize)),
            KeyCode::Home | KeyCode::Char('g') => self.move_selection(isize::MIN / 2),
            KeyCode::End | KeyCode::Char('G') => self.move_selection(isize::MAX / 2),
            KeyCode::Char('p') => return self.command(Action::Pause),
            KeyCode::Char('u') => return self.command(Action::Resume),
            _ => {}
        }
        None
    }

    fn move_selection(&mut self, by: isize) {
        let rows = self.rows();
        let Some(current) = self.selection(&rows) else {
            return;
        };
        let last = rows.len() as isize - 1;
        let next = (current as isize).saturating_add(by).clamp(0, last) as usize;
        self.selected = Some(rows[next].hash.clone());
    }

    fn command(&mut self, action: Action) -> Option<Command> {
        let Some(t) = self.selected_torrent() else {
            self.status = Some("no torrent selected".into());
            return None;
        };
        let command = Command {
            hash: t.hash.clone(),
            name: t.name.clone(),
            action,
        };
        // Kept on this torrent even if the new state moves its row.
        self.selected = Some(command.hash.clone());
        self.status = Some(format!("{} {}...", action.name(), command.name));
        Some(command)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ratatui::crossterm::event::KeyEventKind;

    pub fn torrent(name: &str, state: &str, up: u64) -> Torrent {
        Torrent {
            hash: format!("{:0>40}", name.len().to_string() + name),
            id: 1,
            name: name.into(),
            state: state.into(),
            progress: if state == "seeding" { 1.0 } else { 0.5 },
            size: 1 << 20,
            wanted_size: 1 << 20,
            have_bytes: 1 << 19,
            download_rate: 0,
            upload_rate: up,
            peers: up / 1000,
            uploaded: 0,
            downloaded: 0,
            ratio: 0.0,
            error: None,
            error_kind: None,
            save_dir: "/srv".into(),
            category: None,
            tags: vec![],
            shard: 0,
            added_at: 0,
            queue_position: 0,
        }
    }

    pub fn model_with(torrents: Vec<Torrent>) -> Model {
        let mut m = Model::new("http://127.0.0.1:9091");
        m.update(Update::Fetched(Box::new(View {
            torrents,
            shards: vec![],
            stats: Stats::default(),
        })));
        m
    }

    pub fn press(m: &mut Model, code: KeyCode) -> Option<Command> {
        m.key(KeyEvent::new_with_kind(
            code,
            KeyModifiers::NONE,
            KeyEventKind::Press,
        ))
    }

    fn names(m: &Model) -> Vec<String> {
        m.rows().iter().map(|t| t.name.clone()).collect()
    }

    #[test]
    fn sorts_by_name_then_cycles_columns_and_reverses() {
        let mut m = model_with(vec![
            torrent("charlie", "seeding", 5000),
            torrent("alpha", "paused", 0),
            torrent("bravo", "seeding", 9000),
        ]);
        assert_eq!(names(&m), ["alpha", "bravo", "charlie"]);
        press(&mut m, KeyCode::Char('r'));
        assert_eq!(names(&m), ["charlie", "bravo", "alpha"]);
        press(&mut m, KeyCode::Char('r'));
        for _ in 0..4 {
            press(&mut m, KeyCode::Char('s'));
        }
        assert_eq!(m.sort, Column::Up);
        assert_eq!(names(&m), ["alpha", "charlie", "bravo"]);
        press(&mut m, KeyCode::Char('r'));
        assert_eq!(names(&m), ["bravo", "charlie", "alpha"]);
        press(&mut m, KeyCode::Char('S'));
        assert_eq!(m.sort, Column::Down);
        for _ in 0..4 {
            press(&mut m, KeyCode::Char('s'));
        }
        assert_eq!(m.sort, Column::Name, "the cycle wraps");
    }

    #[test]
    fn the_selection_follows_its_torrent_and_stays_in_bounds() {
        let mut m = model_with(vec![
            torrent("alpha", "seeding", 1),
            torrent("bravo", "seeding", 2),
            torrent("charlie", "seeding", 3),
        ]);
        assert_eq!(m.selected_torrent().unwrap().name, "alpha");
        press(&mut m, KeyCode::Up);
        assert_eq!(m.selected_torrent().unwrap().name, "alpha");
        press(&mut m, KeyCode::Down);
        assert_eq!(m.selected_torrent().unwrap().name, "bravo");
        press(&mut m, KeyCode::Char('r'));
        assert_eq!(m.selected_torrent().unwrap().name, "bravo");
        press(&mut m, KeyCode::End);
        assert_eq!(m.selected_torrent().unwrap().name, "alpha");
        press(&mut m, KeyCode::PageDown);
        assert_eq!(m.selected_torrent().unwrap().name, "alpha");
        press(&mut m, KeyCode::Home);
        assert_eq!(m.selected_torrent().unwrap().name, "charlie");
    }

    #[test]
    fn pause_and_resume_name_the_selected_torrent() {
        let mut m = model_with(vec![
            torrent("alpha", "seeding", 1),
            torrent("bravo", "seeding", 2),
        ]);
        press(&mut m, KeyCode::Down);
        let c = press(&mut m, KeyCode::Char('p')).unwrap();
        assert_eq!((c.name.as_str(), c.action), ("bravo", Action::Pause));
        let c = press(&mut m, KeyCode::Char('u')).unwrap();
        assert_eq!(c.action, Action::Resume);
        let mut empty = model_with(vec![]);
        assert_eq!(press(&mut empty, KeyCode::Char('p')), None);
        assert_eq!(empty.status.as_deref(), Some("no torrent selected"));
    }

    #[test]
    fn the_filter_takes_typed_text_and_esc_clears_it() {
        let mut m = model_with(vec![
            torrent("Alpha", "seeding", 1),
            torrent("bravo", "seeding", 2),
        ]);
        press(&mut m, KeyCode::Char('/'));
        for c in "ALP".chars() {
            press(&mut m, KeyCode::Char(c));
        }
        // Typed keys are text, not commands.
        assert_eq!(press(&mut m, KeyCode::Char('p')), None);
        press(&mut m, KeyCode::Backspace);
        press(&mut m, KeyCode::Enter);
        assert_eq!(names(&m), ["Alpha"]);
        assert!(!m.quit);
        press(&mut m, KeyCode::Esc);
        assert_eq!(names(&m), ["Alpha", "bravo"]);
        press(&mut m, KeyCode::Char('/'));
        for _ in 0..(FILTER_CHARS_MAX + 10) {
            press(&mut m, KeyCode::Char('x'));
        }
        assert_eq!(m.filter.len(), FILTER_CHARS_MAX);
        press(&mut m, KeyCode::Esc);
        assert!(m.filter.is_empty() && !m.editing_filter);
        press(&mut m, KeyCode::Char('q'));
        assert!(m.quit);
    }

    #[test]
    fn a_failed_fetch_keeps_the_last_data_and_says_disconnected() {
        let mut m = model_with(vec![torrent("alpha", "seeding", 1)]);
        m.update(Update::Failed("connection refused".into()));
        assert_eq!(m.link, Link::Disconnected("connection refused".into()));
        assert_eq!(names(&m), ["alpha"]);
        m.update(Update::Fetched(Box::default()));
        assert_eq!(m.link, Link::Connected);
        assert!(m.rows().is_empty());
    }
}
