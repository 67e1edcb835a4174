//! Placeholder until the metrics endpoint lands: no routes yet.

use std::sync::Arc;

use axum::Router;

use super::Api;

pub fn router() -> Router<Arc<Api>> {
    Router::new()
}
