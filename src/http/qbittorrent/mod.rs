//! Placeholder until the qbittorrent API lands: no routes yet.

use std::sync::Arc;

use axum::Router;

use super::Api;

pub fn router() -> Router<Arc<Api>> {
    Router::new()
}
