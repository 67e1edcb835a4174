//! Queue moves as both APIs name them (Transmission's queue-move-top/up/down/bottom,
//! qBittorrent's topPrio/increasePrio/decreasePrio/bottomPrio): the whole queue's new
//! order, which [`Daemon::reorder_queue`](super::core::Daemon::reorder_queue) applies.

use std::collections::HashSet;

use ccbt_engine::InfoHash;

/// How a queue move rearranges the order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Move {
    Top,
    Bottom,
    Up,
    Down,
}

/// The whole queue, first to last, after moving `selected` (kept in their order).
pub fn reordered(queue: &[InfoHash], selected: &HashSet<InfoHash>, how: Move) -> Vec<InfoHash> {
    let (chosen, rest): (Vec<InfoHash>, Vec<InfoHash>) =
        queue.iter().partition(|h| selected.contains(h));
    match how {
        Move::Top => chosen.into_iter().chain(rest).collect(),
        Move::Bottom => rest.into_iter().chain(chosen).collect(),
        Move::Up => {
            let mut order = queue.to_vec();
            for i in 1..order.len() {
                if selected.contains(&order[i]) && !selected.contains(&order[i - 1]) {
                    order.swap(i - 1, i);
                }
            }
            order
        }
        Move::Down => {
            let mut order = queue.to_vec();
            for i in (0..order.len().saturating_sub(1)).rev() {
                if selected.contains(&order[i]) && !selected.contains(&order[i + 1]) {
                    order.swap(i, i + 1);
                }
            }
            order
        }
    }
}
