//! The daemon's control socket as the bench speaks it: one JSON request a line, many
//! requests in flight on a few connections (a writer and a reader thread each, so that
//! neither side's socket buffer can fill and stall the other), and listings read as text.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long one answer may take.
const ANSWER: Duration = Duration::from_secs(120);

/// Sends one `add` per torrent (all with `save_dir`), spread round-robin over
/// `connections` connections, every request written before its answer is read. Returns
/// the info hashes the daemon gave, or the first refusal.
pub fn add_all(
    socket: &Path,
    torrents: &[PathBuf],
    save_dir: &Path,
    connections: usize,
) -> Result<Vec<String>> {
    let connections = connections.clamp(1, 8);
    let mut workers = Vec::new();
    for c in 0..connections {
        let lines: Vec<String> = torrents
            .iter()
            .skip(c)
            .step_by(connections)
            .map(|t| {
                serde_json::json!({"op": "add", "torrent": t, "save_dir": save_dir}).to_string()
            })
            .collect();
        let stream = connect(socket)?;
        workers.push(std::thread::spawn(move || pipeline(stream, lines)));
    }
    let mut hashes = Vec::with_capacity(torrents.len());
    for worker in workers {
        let answers = worker
            .join()
            .map_err(|_| anyhow::anyhow!("a control connection's thread panicked"))??;
        for answer in answers {
            let json: serde_json::Value = serde_json::from_str(&answer)
                .with_context(|| format!("not JSON from the daemon: {answer}"))?;
            match json["hash"].as_str() {
                Some(hash) if json["ok"] == true => hashes.push(hash.to_string()),
                _ => bail!("the daemon refused an add: {answer}"),
            }
        }
    }
    Ok(hashes)
}

/// Writes every line on one thread while this one reads as many answers.
fn pipeline(stream: UnixStream, lines: Vec<String>) -> Result<Vec<String>> {
    let count = lines.len();
    let mut writer = stream.try_clone()?;
    let sender = std::thread::spawn(move || -> std::io::Result<()> {
        let mut out = std::io::BufWriter::with_capacity(64 << 10, &mut writer);
        for line in lines {
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    });
    let mut reader = BufReader::new(stream);
    let mut answers = Vec::with_capacity(count);
    for _ in 0..count {
        let mut answer = String::new();
        if reader.read_line(&mut answer)? == 0 {
            bail!("the daemon closed the control connection");
        }
        answers.push(answer);
    }
    sender
        .join()
        .map_err(|_| anyhow::anyhow!("the writer thread panicked"))??;
    Ok(answers)
}

fn connect(socket: &Path) -> Result<UnixStream> {
    let stream = UnixStream::connect(socket)
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    stream.set_read_timeout(Some(ANSWER))?;
    Ok(stream)
}

/// One request, one answer line.
pub fn call(socket: &Path, request: &serde_json::Value) -> Result<String> {
    let mut stream = connect(socket)?;
    stream.write_all(format!("{request}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer)?;
    if !answer.starts_with("{\"ok\":true") {
        bail!("the daemon answered {request} with {answer}");
    }
    Ok(answer)
}

/// What a listing holds: torrents, and how many of them seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing {
    pub torrents: usize,
    pub seeding: usize,
}

/// `{"op":"list"}`, counted from the answer's text (a listing of 100,000 torrents is tens
/// of MB of JSON; counting its `"hash":` and `"state":"seeding"` keys is all we need).
pub fn list(socket: &Path) -> Result<Listing> {
    let answer = call(socket, &serde_json::json!({"op": "list"}))?;
    Ok(count(&answer))
}

/// `{"op":"summary"}`: the same counts without a listing, cheap at any size.
pub fn summary(socket: &Path) -> Result<Listing> {
    let answer = call(socket, &serde_json::json!({"op": "summary"}))?;
    let v: serde_json::Value = serde_json::from_str(&answer)?;
    let n = |k: &str| v["summary"][k].as_u64().unwrap_or(0) as usize;
    Ok(Listing {
        torrents: n("torrents"),
        seeding: n("seeding"),
    })
}

pub fn count(answer: &str) -> Listing {
    Listing {
        torrents: answer.matches("\"hash\":").count(),
        seeding: answer.matches("\"state\":\"seeding\"").count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_a_listing() {
        let answer = r#"{"ok":true,"torrents":[{"hash":"aa","state":"seeding"},{"hash":"bb","state":"checking"}]}"#;
        assert_eq!(
            count(answer),
            Listing {
                torrents: 2,
                seeding: 1
            }
        );
    }
}
