//! Categories and tags: the lists (`categories`, `tags`), creating and removing them, and
//! putting torrents in them (`setCategory`, `addTags`, `removeTags`). The lists live in the
//! daemon ([`crate::daemon::labels`]) and the state database, so they survive a restart.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{json, Map, Value};

use super::actions::{each, targets};
use super::params::{list, Params};
use super::{done, json, Qbt, Refusal, Reply};
use crate::daemon::labels::{valid_category, Categories};

/// `{name: {name, savePath}}`.
pub fn categories_json(categories: &Categories) -> Map<String, Value> {
    categories
        .iter()
        .map(|(name, path)| (name.clone(), json!({"name": name, "savePath": path})))
        .collect()
}

pub async fn categories(State(q): State<Arc<Qbt>>) -> Reply {
    json(Value::Object(categories_json(
        &q.api.daemon.labels.categories(),
    )))
}

/// A category's save path as given, checked against `control.allowed_save_dirs` ("" is
/// the download directory).
fn category_path(q: &Qbt, p: &Params) -> Result<String, Refusal> {
    let path = p.get("savePath").unwrap_or("").trim();
    if path.is_empty() {
        return Ok(String::new());
    }
    q.api
        .access
        .save_dir(path, &q.api.daemon.download_dir())
        .map(|d| d.display().to_string())
        .map_err(|e| Refusal(StatusCode::FORBIDDEN, format!("savePath: {e}")))
}

pub async fn create_category(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let name = p.need("category")?.trim().to_string();
    if !valid_category(&name) {
        return Err(Refusal::bad(format!("Invalid category name: {name:?}")));
    }
    let path = category_path(&q, &p)?;
    q.api
        .blocking(move |d| d.labels.create_category(&name, &path, true))
        .await
        .map_err(|e| Refusal::conflict(format!("Unable to create category: {e}")))?;
    done()
}

pub async fn edit_category(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let name = p.need("category")?.trim().to_string();
    let path = category_path(&q, &p)?;
    q.api
        .blocking(move |d| d.labels.edit_category(&name, &path))
        .await
        .map_err(|e| Refusal::conflict(format!("Unable to edit category: {e}")))?;
    done()
}

pub async fn remove_categories(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let names = list(p.need("categories")?, '\n');
    q.api.blocking(move |d| d.remove_categories(&names)).await?;
    q.api.refreshed().await;
    done()
}

pub async fn set_category(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let name = p.need("category")?.trim().to_string();
    let category = if name.is_empty() {
        None
    } else if q.api.daemon.labels.category(&name).is_some() {
        Some(name)
    } else {
        return Err(Refusal::conflict("Incorrect category name"));
    };
    let hashes = targets(&q, &p)?;
    each(&q, hashes, move |d, h| {
        let tags = d.with_entry(&h, |e| e.tags.clone()).unwrap_or_default();
        d.set_labels(h, category.clone(), tags)
    })
    .await
}

pub async fn tags(State(q): State<Arc<Qbt>>) -> Reply {
    json(json!(q.api.daemon.labels.tags()))
}

pub async fn create_tags(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let names = list(p.need("tags")?, ',');
    q.api
        .blocking(move |d| d.labels.create_tags(&names))
        .await?;
    done()
}

pub async fn delete_tags(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let names = list(p.need("tags")?, ',');
    q.api.blocking(move |d| d.delete_tags(&names)).await?;
    q.api.refreshed().await;
    done()
}

pub async fn add_tags(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let names = list(p.need("tags")?, ',');
    let hashes = targets(&q, &p)?;
    let created = names.clone();
    q.api
        .blocking(move |d| d.labels.create_tags(&created))
        .await?;
    each(&q, hashes, move |d, h| {
        let Some((category, mut tags)) = d.with_entry(&h, |e| (e.category.clone(), e.tags.clone()))
        else {
            return Ok(());
        };
        let before = tags.len();
        for n in &names {
            if !tags.contains(n) {
                tags.push(n.clone());
            }
        }
        if tags.len() == before {
            return Ok(());
        }
        d.set_labels(h, category, tags)
    })
    .await
}

/// Removes the given tags from the torrents; with `tags` empty, all of their tags.
pub async fn remove_tags(State(q): State<Arc<Qbt>>, p: Params) -> Reply {
    let names = list(p.get("tags").unwrap_or(""), ',');
    let hashes = targets(&q, &p)?;
    each(&q, hashes, move |d, h| {
        let Some((category, tags)) = d.with_entry(&h, |e| (e.category.clone(), e.tags.clone()))
        else {
            return Ok(());
        };
        let kept: Vec<String> = if names.is_empty() {
            Vec::new()
        } else {
            tags.iter()
                .filter(|t| !names.contains(t))
                .cloned()
                .collect()
        };
        if kept.len() == tags.len() {
            return Ok(());
        }
        d.set_labels(h, category, kept)
    })
    .await
}
