//! Draws a [`Model`] into a ratatui frame: the header with totals and the link state, the
//! torrents table, the shards pane, and a footer with the keys, the filter and the last
//! command's outcome. Reads the model only. On a small terminal the shards pane goes
//! first, then the footer; columns shrink and names are cut, nothing panics.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::model::{Column, Link, Model};
use crate::native_api::wire::{Shard, Torrent};

/// Shard rows the pane shows at most (the rest are summed in its title).
pub const SHARD_ROWS_MAX: usize = 8;
/// Below this height the shards pane is left out.
const SHARDS_MIN_HEIGHT: u16 = 16;
/// Below this height the footer is left out.
const FOOTER_MIN_HEIGHT: u16 = 6;

pub fn draw(frame: &mut Frame, model: &Model) {
    let area = frame.area();
    let shard_rows = model.view.shards.len().min(SHARD_ROWS_MAX) as u16;
    let shards_height = if area.height >= SHARDS_MIN_HEIGHT && shard_rows > 0 {
        shard_rows + 3
    } else {
        0
    };
    let footer_height = u16::from(area.height >= FOOTER_MIN_HEIGHT);
    let [header, table, shards, footer] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Min(1),
        Constraint::Length(shards_height),
        Constraint::Length(footer_height),
    ])
    .areas(area);
    draw_header(frame, header, model);
    draw_torrents(frame, table, model);
    if shards_height > 0 {
        draw_shards(frame, shards, &model.view.shards);
    }
    if footer_height > 0 {
        draw_footer(frame, footer, model);
    }
}

/// `12.3 MiB/s`, `0 B/s`.
pub fn rate(bytes_per_s: u64) -> String {
    format!("{}/s", crate::format::bytes(bytes_per_s))
}

fn draw_header(frame: &mut Frame, area: Rect, model: &Model) {
    let link = match &model.link {
        Link::Connecting => Span::raw("connecting...").yellow(),
        Link::Connected => Span::raw("connected").green(),
        Link::Disconnected(why) => Span::raw(format!("disconnected ({why}); retrying"))
            .red()
            .bold(),
    };
    let s = &model.view.stats;
    let states: Vec<String> = s.states.iter().map(|(k, v)| format!("{v} {k}")).collect();
    let lines = vec![
        Line::from(vec![
            Span::raw("ccbt-uring top ").bold(),
            Span::raw(format!("{}  ", model.url)),
            link,
        ]),
        Line::from(format!(
            "{} torrents{}  down {}  up {}  peers {}  shards {}",
            s.torrents,
            if states.is_empty() {
                String::new()
            } else {
                format!(" ({})", states.join(", "))
            },
            rate(s.download_rate),
            rate(s.upload_rate),
            s.peers,
            s.shards
        )),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn cell(column: Column, t: &Torrent) -> String {
    match column {
        Column::Name => t.name.clone(),
        Column::State => t.state.clone(),
        Column::Progress => format!("{:.1}%", t.progress * 100.0),
        Column::Down => rate(t.download_rate),
        Column::Up => rate(t.upload_rate),
        Column::Peers => t.peers.to_string(),
        Column::Ratio => format!("{:.2}", t.ratio),
    }
}

fn width(column: Column) -> Constraint {
    match column {
        Column::Name => Constraint::Min(8),
        Column::State => Constraint::Length(11),
        Column::Progress => Constraint::Length(6),
        Column::Down | Column::Up => Constraint::Length(12),
        Column::Peers => Constraint::Length(5),
        Column::Ratio => Constraint::Length(6),
    }
}

fn draw_torrents(frame: &mut Frame, area: Rect, model: &Model) {
    let rows = model.rows();
    let header = Row::new(Column::ALL.iter().map(|&c| {
        if c == model.sort {
            format!("{}{}", c.title(), if model.reverse { "v" } else { "^" })
        } else {
            c.title().to_string()
        }
    }))
    .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    // Only the rows that fit are built (a daemon may hold 100,000): a window that keeps
    // the selection in view, at its bottom edge once it has moved past the first page.
    let fits = usize::from(area.height.saturating_sub(2)).max(1);
    let selection = model.selection(&rows);
    let offset = selection.map_or(0, |s| (s + 1).saturating_sub(fits));
    let body = rows.iter().skip(offset).take(fits).map(|t| {
        let row = Row::new(Column::ALL.iter().map(|&c| cell(c, t)));
        match t.state.as_str() {
            "failed" => row.red(),
            "paused" | "stopped" => row.dark_gray(),
            _ => row,
        }
    });
    let title = if model.filter.is_empty() {
        format!(" torrents: {} ", rows.len())
    } else {
        format!(
            " torrents: {} of {} matching {:?} ",
            rows.len(),
            model.view.torrents.len(),
            model.filter
        )
    };
    let table = Table::new(body, Column::ALL.map(width))
        .header(header)
        .block(Block::new().borders(Borders::TOP).title(title))
        .row_highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("> ");
    let mut state = TableState::default().with_selected(selection.map(|s| s - offset));
    frame.render_stateful_widget(table, area, &mut state);
}

fn draw_shards(frame: &mut Frame, area: Rect, shards: &[Shard]) {
    let header = Row::new(["Shard", "Torrents", "Peers", "Down", "Up"])
        .style(Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED));
    let body = shards.iter().take(SHARD_ROWS_MAX).map(|s| {
        Row::new([
            s.shard.to_string(),
            s.torrents.to_string(),
            s.peers.to_string(),
            rate(s.download_rate),
            rate(s.upload_rate),
        ])
    });
    let title = if shards.len() > SHARD_ROWS_MAX {
        format!(" shards: {} (first {SHARD_ROWS_MAX} shown) ", shards.len())
    } else {
        format!(" shards: {} ", shards.len())
    };
    let widths = [
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(7),
        Constraint::Length(12),
        Constraint::Length(12),
    ];
    let table = Table::new(body, widths)
        .header(header)
        .block(Block::new().borders(Borders::TOP).title(title));
    frame.render_widget(table, area);
}

fn draw_footer(frame: &mut Frame, area: Rect, model: &Model) {
    let line = if model.editing_filter {
        Line::from(vec![
            Span::raw("filter: ").bold(),
            Span::raw(format!("{}_", model.filter)),
            Span::raw("  (Enter keeps it, Esc clears it)").dark_gray(),
        ])
    } else {
        let mut spans = vec![Span::raw(
            "q quit  s sort  r reverse  / filter  p pause  u resume  up/down select",
        )
        .dark_gray()];
        if let Some(status) = &model.status {
            spans.push(Span::raw("  "));
            spans.push(Span::raw(status.clone()).bold());
        }
        Line::from(spans)
    };
    frame.render_widget(Paragraph::new(line), area);
}

#[cfg(test)]
mod tests {
    use super::super::model::tests::{model_with, press, torrent};
    use super::super::model::{Update, View};
    use super::*;
    use crate::native_api::wire::Stats;
    use ratatui::backend::TestBackend;
    use ratatui::crossterm::event::KeyCode;
    use ratatui::Terminal;

    fn screen(model: &Model, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, model)).unwrap();
        let buffer = terminal.backend().buffer();
        (0..height)
            .map(|y| {
                (0..width)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect::<String>()
                    .trim_end()
                    .to_string()
                    + "\n"
            })
            .collect()
    }

    fn sample() -> Model {
        let mut m = model_with(vec![]);
        let mut stats = Stats {
            torrents: 2,
            shards: 2,
            upload_rate: 3 << 20,
            ..Stats::default()
        };
        stats.states.insert("seeding".into(), 1);
        stats.states.insert("paused".into(), 1);
        m.update(Update::Fetched(Box::new(View {
            torrents: vec![
                torrent("alpha", "seeding", 3 << 20),
                torrent("bravo", "paused", 0),
            ],
            shards: vec![
                Shard {
                    shard: 0,
                    torrents: 2,
                    peers: 3,
                    download_rate: 0,
                    upload_rate: 3 << 20,
                },
                Shard {
                    shard: 1,
                    ..Shard::default()
                },
            ],
            stats,
        })));
        m
    }

    #[test]
    fn a_full_screen_shows_totals_torrents_shards_and_keys() {
        let mut m = sample();
        press(&mut m, KeyCode::Down);
        let text = screen(&m, 100, 24);
        assert!(text.contains("connected"), "{text}");
        assert!(
            text.contains("2 torrents (1 paused, 1 seeding)  down 0 B/s  up 3.00 MiB/s"),
            "{text}"
        );
        let alpha = text.lines().find(|l| l.contains("alpha")).unwrap();
        assert!(
            alpha.contains("seeding") && alpha.contains("100.0%"),
            "{alpha}"
        );
        let bravo = text.lines().find(|l| l.contains("bravo")).unwrap();
        assert!(bravo.starts_with("> "), "the selection is marked: {text}");
        assert!(text.contains("shards: 2"), "{text}");
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("0") && l.contains("3.00 MiB/s")),
            "{text}"
        );
        assert!(text.contains("q quit"), "{text}");
        assert!(text.contains("Name^"), "the sort column is marked: {text}");
    }

    #[test]
    fn disconnected_is_said_and_the_last_rows_stay() {
        let mut m = sample();
        m.update(Update::Failed("connection refused".into()));
        let text = screen(&m, 100, 24);
        assert!(
            text.contains("disconnected (connection refused); retrying"),
            "{text}"
        );
        assert!(text.contains("alpha"), "{text}");
    }

    #[test]
    fn the_filter_line_and_a_status_show_in_the_footer() {
        let mut m = sample();
        press(&mut m, KeyCode::Char('/'));
        press(&mut m, KeyCode::Char('b'));
        let text = screen(&m, 100, 24);
        assert!(text.contains("filter: b_"), "{text}");
        assert!(text.contains("torrents: 1 of 2 matching \"b\""), "{text}");
        assert!(!text.contains("alpha"), "{text}");
        press(&mut m, KeyCode::Enter);
        m.update(Update::Acted("paused bravo".into()));
        assert!(screen(&m, 100, 24).contains("paused bravo"));
    }

    #[test]
    fn a_long_list_shows_the_window_around_the_selection() {
        let many = (0..1000)
            .map(|i| torrent(&format!("t{i:04}"), "seeding", i))
            .collect();
        let mut m = model_with(many);
        let text = screen(&m, 80, 12);
        assert!(
            text.contains("> t0000") && text.contains("torrents: 1000"),
            "{text}"
        );
        for _ in 0..30 {
            press(&mut m, KeyCode::Down);
        }
        let text = screen(&m, 80, 12);
        assert!(text.contains("> t0030"), "{text}");
        assert!(
            !text.contains("t0000"),
            "scrolled past the first rows: {text}"
        );
        press(&mut m, KeyCode::End);
        assert!(screen(&m, 80, 12).contains("> t0999"));
    }

    #[test]
    fn small_terminals_drop_panes_and_never_panic() {
        let m = sample();
        for (w, h) in [(1, 1), (10, 3), (20, 5), (40, 10), (0, 0), (300, 2)] {
            let _ = screen(&m, w, h);
        }
        let text = screen(&m, 60, 10);
        assert!(!text.contains("shards:"), "{text}");
        assert!(text.contains("alpha"), "{text}");
    }
}
