//! Entry functions of the fuzz targets: one `fn(&[u8])` per target.
//!
//! Why a crate of its own: the cargo-fuzz crate (`fuzz/`) needs nightly and sits outside the
//! workspace, so nothing there is built by `cargo test --workspace`. Each of its targets is
//! one line that calls a function here, and `tests/corpus.rs` replays every checked-in
//! corpus file through the same functions on the stable toolchain, so the targets cannot rot
//! and every crash once found stays a regression test.
//!
//! Each function feeds bytes to one decoder the way the engine does, then checks what a
//! correct decoder must give (round trips, stated bounds). A panic, in the decoder or in one
//! of those checks, is a finding. Bad input itself is never a finding: errors are expected.

pub mod formats;
pub mod session;
pub mod stream;

/// One fuzz target: its name (the file `fuzz/fuzz_targets/<name>.rs` and the corpus
/// directory `fuzz/corpus/<name>/`) and its entry function.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `fuzz/run.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "bencode",
        run: formats::bencode,
    },
    Target {
        name: "metainfo",
        run: formats::metainfo,
    },
    Target {
        name: "magnet",
        run: formats::magnet,
    },
    Target {
        name: "handshake",
        run: formats::handshake,
    },
    Target {
        name: "wire_message",
        run: formats::wire_message,
    },
    Target {
        name: "extension_handshake",
        run: formats::extension_handshake,
    },
    Target {
        name: "ut_metadata",
        run: formats::ut_metadata,
    },
    Target {
        name: "metadata_fetch",
        run: session::metadata_fetch,
    },
    Target {
        name: "http_tracker",
        run: stream::http_tracker,
    },
    Target {
        name: "udp_tracker",
        run: formats::udp_tracker,
    },
    Target {
        name: "http_response",
        run: stream::http_response,
    },
    Target {
        name: "state_records",
        run: formats::state_records,
    },
    Target {
        name: "config_toml",
        run: formats::config_toml,
    },
    Target {
        name: "blocklist",
        run: formats::blocklist,
    },
    Target {
        name: "peer_session",
        run: session::peer_session,
    },
    Target {
        name: "ut_pex",
        run: formats::ut_pex,
    },
    Target {
        name: "krpc",
        run: formats::krpc,
    },
    Target {
        name: "lsd",
        run: formats::lsd,
    },
];

/// The entry function of target `name`.
pub fn target(name: &str) -> Option<fn(&[u8])> {
    TARGETS.iter().find(|t| t.name == name).map(|t| t.run)
}
