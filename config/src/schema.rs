//! The settings themselves: one declaration per key gives the typed field,
//! its doc (printed by `config show`), whether a reload applies it, and how
//! each layer sets and prints it. Defaults are in [`Config::default_for_env`].

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use crate::paths::Home;
use crate::setting::{Raw, Setting};

/// Whether a running daemon can apply a changed value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Live {
    /// Applied on reload.
    Live,
    /// Read once at start; a change waits for a restart.
    Restart,
}

/// A byte rate in bytes per second; 0 means unlimited. In TOML an integer or
/// a string with a unit (`"10 MiB"`, see [`crate::units`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteRate(pub u64);

impl ByteRate {
    pub const UNLIMITED: ByteRate = ByteRate(0);

    /// The cap, or `None` when unlimited.
    pub fn limit(self) -> Option<u64> {
        (self.0 > 0).then_some(self.0)
    }

    /// The tighter of two caps, where 0 is no cap.
    pub fn min_cap(self, other: ByteRate) -> ByteRate {
        match (self.limit(), other.limit()) {
            (Some(a), Some(b)) => ByteRate(a.min(b)),
            (Some(_), None) => self,
            _ => other,
        }
    }
}

impl std::fmt::Display for ByteRate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit() {
            Some(bytes) => write!(f, "{}/s", crate::units::format_bytes(bytes)),
            None => f.write_str("unlimited"),
        }
    }
}

/// What happens to a torrent that reaches its share limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ShareAction {
    /// Stop seeding but keep it (and its data).
    #[default]
    Pause,
    /// Remove the torrent from the session; its data stays on disk.
    Remove,
}

/// How new files are laid out on disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Preallocate {
    /// Set the length only; blocks are allocated as pieces arrive.
    #[default]
    Sparse,
    /// Reserve every block up front (fallocate): no ENOSPC mid-download, less fragmentation.
    Full,
}

/// How seeding reads piece data from disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ServeReads {
    /// O_DIRECT into the shard's own read cache (the page cache is left alone).
    Direct,
    /// Through the kernel's page cache, as other clients read.
    Buffered,
    /// From the page cache when it holds the blocks already, O_DIRECT otherwise.
    #[default]
    Auto,
}

/// The share limits that apply to one torrent, from [share], its category
/// or the torrent itself.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ShareLimits {
    pub ratio_limit: Option<f64>,
    pub seeding_time_limit: Option<Duration>,
    pub action: ShareAction,
}

/// One setting's description, shared by every layer, `show` and `diff`.
pub(crate) struct KeySpec {
    pub section: &'static str,
    pub name: &'static str,
    pub live: Live,
    pub doc: &'static str,
    pub set: fn(&mut Config, Raw<'_>, &Home) -> Result<(), String>,
    pub get: fn(&Config) -> String,
}

impl KeySpec {
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.name)
    }
}

macro_rules! live_doc {
    (Live) => {
        " Live: a reload applies it."
    };
    (Restart) => {
        " Restart-only: read when the daemon starts."
    };
}

macro_rules! sections {
    ($(
        $(#[doc = $sdoc:literal])*
        [$sec:ident] $Sec:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty, $live:ident, $check:path;
            )*
        } $(+ { $( $(#[doc = $xdoc:literal])* $xfield:ident : $xty:ty ),* })?
    )*) => {
        $(
            $(#[doc = $sdoc])*
            #[derive(Clone, Debug, PartialEq)]
            pub struct $Sec {
                $(
                    $(#[doc = $doc])*
                    #[doc = ""]
                    #[doc = live_doc!($live)]
                    pub $field: $ty,
                )*
                $($( $(#[doc = $xdoc])* pub $xfield: $xty, )*)?
            }
        )*

        /// The daemon's whole configuration, one field per TOML section.
        #[derive(Clone, Debug, PartialEq)]
        pub struct Config {
            $( $(#[doc = $sdoc])* pub $sec: $Sec, )*
        }

        /// Section names in file order.
        pub(crate) const SECTIONS: &[&str] = &[$(stringify!($sec)),*];

        /// Every plain key (per-category share keys are in [`CATEGORY_KEYS`]).
        pub(crate) static KEYS: &[KeySpec] = &[$($(
            KeySpec {
                section: stringify!($sec),
                name: stringify!($field),
                live: Live::$live,
                doc: concat!($($doc, "\n",)* live_doc!($live)),
                set: |config, raw, home| {
                    let value = <$ty as Setting>::parse(raw, home)?;
                    $check(&value)?;
                    config.$sec.$field = value;
                    Ok(())
                },
                get: |config| <$ty as Setting>::to_toml(&config.$sec.$field),
            },
        )*)*];
    };
}

fn any<T>(_: &T) -> Result<(), String> {
    Ok(())
}

fn at_least_one_u64(value: &u64) -> Result<(), String> {
    if *value == 0 {
        return Err("must be at least 1".to_string());
    }
    Ok(())
}

#[allow(clippy::ptr_arg)] // the schema macro hands every check a `&T`
fn host_ports(value: &Vec<String>) -> Result<(), String> {
    for entry in value {
        match entry.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => return Err(format!("{entry:?} is not HOST:PORT")),
        }
    }
    Ok(())
}

fn at_least_one(value: &u32) -> Result<(), String> {
    if *value == 0 {
        return Err("must be at least 1".to_string());
    }
    Ok(())
}

/// More shards than this is a typo, not a machine.
const SHARDS_MAX: u32 = 1024;

fn shard_count(value: &u32) -> Result<(), String> {
    if *value > SHARDS_MAX {
        return Err(format!("must be from 0 (one per core) to {SHARDS_MAX}"));
    }
    Ok(())
}

#[allow(clippy::ptr_arg)] // the schema macro hands every check a `&T`
fn ipv4_or_empty(value: &String) -> Result<(), String> {
    if value.is_empty() || value.parse::<std::net::Ipv4Addr>().is_ok() {
        return Ok(());
    }
    Err(format!(
        "{value:?} is not an IPv4 address (\"\" picks the interface from the peer address)"
    ))
}

// The macro hands every check a `&T`.
#[allow(clippy::ptr_arg)]
fn not_empty(value: &String) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("must not be empty (use \"off\" to silence logging)".to_string());
    }
    Ok(())
}

sections! {
    /// `[daemon]`: where the daemon keeps things and how it is reached.
    [daemon] Daemon {
        /// Resume data and the saved session.
        /// Default `$XDG_DATA_HOME/ccbt-uring` (`~/.local/share/ccbt-uring`).
        state_dir: PathBuf, Restart, any;
        /// Where new torrents download unless they say otherwise. Default `~/Downloads`.
        download_dir: PathBuf, Live, any;
        /// Directories scanned for new .torrent files. Default none.
        watch_dirs: Vec<PathBuf>, Live, any;
        /// TCP and UDP port for peers. 0 lets the kernel pick a free port
        /// (for tests; a seedbox wants a fixed one). Default 6881.
        peer_port: u16, Restart, any;
        /// Address of the control API. Default `127.0.0.1:9091`.
        control: SocketAddr, Restart, any;
        /// Executor threads; 0 means one per core. Default 0.
        shards: u32, Restart, shard_count;
        /// Log filter in tracing's syntax (`info`, `ccbt=debug,warn`). Default `info`.
        log: String, Live, not_empty;
    }

    /// `[control]`: who may use the HTTP control APIs (Transmission RPC, qBittorrent
    /// WebAPI, metrics, events) at `daemon.control`.
    [control] Control {
        /// User name both APIs require; "" = none. With no credentials the APIs answer
        /// only on a loopback `daemon.control`. Default "".
        username: String, Restart, any;
        /// Password for `username`. Keep the config file private (mode 0600). Default "".
        password: String, Restart, any;
        /// Client addresses or CIDR ranges allowed besides loopback ("192.168.1.0/24");
        /// empty = any address (credentials still apply). Default [].
        ip_whitelist: Vec<String>, Restart, any;
        /// Host names allowed in the Host header besides localhost and IP literals
        /// (against DNS rebinding); "*" allows any. Default [].
        host_whitelist: Vec<String>, Restart, any;
        /// Directory the Transmission web UI is served from at /transmission/web/
        /// (Debian's transmission-common installs it at /usr/share/transmission/web);
        /// "" = none. Default "/usr/share/transmission/web".
        web_ui_dir: Option<PathBuf>, Restart, any;
        /// Save directories an API may name must lie under one of these (after `..`
        /// and symlinks are resolved); empty = anywhere. Relative ones are taken under
        /// `daemon.download_dir`. Default [].
        allowed_save_dirs: Vec<PathBuf>, Restart, any;
        /// Largest request body accepted, bytes (a .torrent upload is one). Default 16 MiB.
        max_request_bytes: u64, Restart, at_least_one_u64;
        /// Failed logins from one address before it is banned. Default 5.
        login_max_failures: u32, Restart, at_least_one;
        /// Seconds a banned address stays banned. Default 3600.
        login_ban_s: u32, Restart, at_least_one;
    }

    /// `[limits]`: bandwidth and resource caps.
    [limits] Limits {
        /// Global upload cap in bytes per second, all torrents together; 0 = unlimited.
        /// An integer or a string like "10 MiB". Default 0.
        upload_bytes_per_s: ByteRate, Live, any;
        /// Global download cap in bytes per second; 0 = unlimited. Default 0.
        download_bytes_per_s: ByteRate, Live, any;
        /// Peer connections one shard holds at most. Default 2000.
        max_connections_per_shard: u32, Live, at_least_one;
        /// Peer connections per torrent at most. Default 80.
        max_peers_per_torrent: u32, Live, at_least_one;
        /// Connections from one IP address at most. Default 8.
        max_connections_per_ip: u32, Live, at_least_one;
        /// Peers unchoked at once per torrent; 0 = unchoke every interested peer. Default 0.
        upload_slots: u32, Live, any;
        /// A complete torrent with at least this many peers is served from every shard,
        /// each keeping the peers it accepted (its upload slots and peer cap are shared
        /// out between the shards); 0 = each torrent from its own shard only. Default 8.
        hot_torrent_peers: u32, Restart, any;
        /// Piece cache size in MiB per shard. Default 64.
        cache_mib: u32, Restart, at_least_one;
        /// Open file handles one shard keeps at most. Default 512.
        open_files_per_shard: u32, Restart, at_least_one;
    }

    /// `[queue]`: how many torrents are active at once; 0 means unlimited.
    [queue] Queue {
        /// Torrents downloading at once; 0 = unlimited. Default 5.
        max_active_downloads: u32, Live, any;
        /// Torrents seeding at once; 0 = unlimited. Default 0.
        max_active_seeds: u32, Live, any;
        /// Torrents hash-checking at once; 0 = unlimited. Default 1.
        max_active_checks: u32, Live, any;
    }

    /// `[share]`: when a torrent has seeded enough. `[share.categories.NAME]`
    /// tables take the same keys; a key a category leaves out comes from here.
    [share] Share {
        /// Stop at this upload/download ratio, e.g. 2.0; "none" = no limit. Default none.
        ratio_limit: Option<f64>, Live, any;
        /// Stop after seeding this long: minutes, or a duration like "2h" or "1d12h";
        /// "none" = no limit. Default none.
        seeding_time_limit: Option<Duration>, Live, any;
        /// What a limit does: "pause" or "remove" (data stays on disk). Default "pause".
        action: ShareAction, Live, any;
    } + {
        /// Per-category limits by category name, already filled in from [share].
        categories: BTreeMap<String, ShareLimits>
    }

    /// `[blocklist]`: peers never to talk to.
    [blocklist] Blocklist {
        /// A P2P-format or CIDR-per-line blocklist file; "" = none. Default none.
        path: Option<PathBuf>, Live, any;
    }

    /// `[web_seeds]`: HTTP servers that hold torrents' files (BEP 19 `url-list`).
    [web_seeds] WebSeeds {
        /// Fetch pieces from the web seeds torrents list, beside peers (plain http://
        /// only). Default true.
        enabled: bool, Restart, any;
    }

    /// `[pex]`: peer exchange (BEP 11, ut_pex) with peers that offer it.
    [pex] Pex {
        /// Tell connected peers of each other (at most 50 added and 50 dropped a minute)
        /// and dial the peers they name; private torrents never do. Default true.
        enabled: bool, Restart, any;
    }

    /// `[dht]`: the mainline DHT (BEP 5), one node per process on UDP at the peer port.
    [dht] Dht {
        /// Find peers of public torrents through the DHT and announce them there
        /// (private torrents never are, BEP 27). Default true.
        enabled: bool, Restart, any;
        /// HOST:PORT nodes to join through while the routing table is empty. Default
        /// ["router.bittorrent.com:6881", "dht.transmissionbt.com:6881",
        /// "router.utorrent.com:6881"].
        bootstrap: Vec<String>, Restart, host_ports;
    }

    /// `[lsd]`: local service discovery (BEP 14), multicast on one IPv4 interface.
    [lsd] Lsd {
        /// Announce public torrents to peers on the local network and take the peers
        /// they announce (private torrents never are, BEP 27). Off while peers listen on
        /// loopback only, unless `interface` is set. Default true.
        enabled: bool, Restart, any;
        /// The IPv4 address of the interface to multicast on; "" for the kernel's choice
        /// (the default route's). Default "".
        interface: String, Restart, ipv4_or_empty;
    }

    /// `[trackers]`: how announces are paced, per shard (each shard has its own line).
    [trackers] Trackers {
        /// Announces in flight to one tracker host at once. Default 4.
        announces_per_host: u32, Restart, at_least_one;
        /// Announces in flight at once, all hosts together. Default 64.
        announces_at_once: u32, Restart, at_least_one;
        /// Least milliseconds between two announces to one host: 20 ms sends 100,000
        /// `started` announces to one tracker over about 17 minutes with two shards; a
        /// tracker on the same machine can take 0. Default 20.
        host_gap_ms: u32, Restart, any;
    }

    /// `[hooks]`: programs run on torrent events.
    [hooks] Hooks {
        /// Program run when a torrent completes, with its info hash, name and
        /// directory as arguments; "" = none. Default none.
        on_complete: Option<PathBuf>, Live, any;
        /// Program run when a torrent stops on an error; "" = none. Default none.
        on_error: Option<PathBuf>, Live, any;
        /// Seconds a hook may run before it is killed. Default 60.
        timeout_s: u32, Live, at_least_one;
        /// Hooks running at once; more wait their turn. Default 4.
        max_running: u32, Live, at_least_one;
    }

    /// `[storage]`: how files are written.
    [storage] Storage {
        /// "sparse" or "full" (reserve all blocks up front). Default "sparse".
        preallocate: Preallocate, Live, any;
        /// Follow symlinks that stay inside the download directory. Default false.
        allow_symlinks_inside: bool, Live, any;
        /// How seeding reads: "direct" (O_DIRECT into our cache), "buffered" (the page
        /// cache) or "auto" (the page cache when it holds the blocks, else direct).
        /// Default "auto".
        serve_reads: ServeReads, Restart, any;
    }
}

/// A share key inside `[share.categories.NAME]`.
pub(crate) struct CategoryKey {
    pub name: &'static str,
    pub set: fn(&mut ShareLimits, Raw<'_>, &Home) -> Result<(), String>,
    pub get: fn(&ShareLimits) -> String,
    /// Copies the `[share]` value, for keys the category leaves out.
    pub inherit: fn(&mut ShareLimits, &Share),
}

pub(crate) static CATEGORY_KEYS: &[CategoryKey] = &[
    CategoryKey {
        name: "ratio_limit",
        set: |limits, raw, home| {
            limits.ratio_limit = Setting::parse(raw, home)?;
            Ok(())
        },
        get: |limits| limits.ratio_limit.to_toml(),
        inherit: |limits, share| limits.ratio_limit = share.ratio_limit,
    },
    CategoryKey {
        name: "seeding_time_limit",
        set: |limits, raw, home| {
            limits.seeding_time_limit = Setting::parse(raw, home)?;
            Ok(())
        },
        get: |limits| limits.seeding_time_limit.to_toml(),
        inherit: |limits, share| limits.seeding_time_limit = share.seeding_time_limit,
    },
    CategoryKey {
        name: "action",
        set: |limits, raw, home| {
            limits.action = Setting::parse(raw, home)?;
            Ok(())
        },
        get: |limits| limits.action.to_toml(),
        inherit: |limits, share| limits.action = share.action,
    },
];

impl Share {
    /// The `[share]` limits themselves.
    pub fn global(&self) -> ShareLimits {
        ShareLimits {
            ratio_limit: self.ratio_limit,
            seeding_time_limit: self.seeding_time_limit,
            action: self.action,
        }
    }

    /// The limits for a torrent in `category`: its table if there is one,
    /// else `[share]`.
    pub fn for_category(&self, category: Option<&str>) -> ShareLimits {
        category
            .and_then(|name| self.categories.get(name))
            .cloned()
            .unwrap_or_else(|| self.global())
    }
}

impl Config {
    /// The built-in defaults, with home-relative paths resolved against
    /// `env` (`HOME`, `XDG_DATA_HOME`).
    pub fn default_for_env(env: &[(String, String)]) -> Config {
        Config::defaults(&Home::from_env(env))
    }

    pub(crate) fn defaults(home: &Home) -> Config {
        Config {
            daemon: Daemon {
                state_dir: home.default_state_dir(),
                download_dir: home.default_download_dir(),
                watch_dirs: Vec::new(),
                peer_port: 6881,
                control: SocketAddr::from((Ipv4Addr::LOCALHOST, 9091)),
                shards: 0,
                log: "info".to_string(),
            },
            control: Control {
                username: String::new(),
                password: String::new(),
                ip_whitelist: Vec::new(),
                host_whitelist: Vec::new(),
                web_ui_dir: Some(PathBuf::from("/usr/share/transmission/web")),
                allowed_save_dirs: Vec::new(),
                max_request_bytes: 16 << 20,
                login_max_failures: 5,
                login_ban_s: 3600,
            },
            limits: Limits {
                upload_bytes_per_s: ByteRate::UNLIMITED,
                download_bytes_per_s: ByteRate::UNLIMITED,
                max_connections_per_shard: 2000,
                max_peers_per_torrent: 80,
                max_connections_per_ip: 8,
                upload_slots: 0,
                hot_torrent_peers: 8,
                cache_mib: 64,
                open_files_per_shard: 512,
            },
            queue: Queue {
                max_active_downloads: 5,
                max_active_seeds: 0,
                max_active_checks: 1,
            },
            share: Share {
                ratio_limit: None,
                seeding_time_limit: None,
                action: ShareAction::Pause,
                categories: BTreeMap::new(),
            },
            blocklist: Blocklist { path: None },
            web_seeds: WebSeeds { enabled: true },
            pex: Pex { enabled: true },
            dht: Dht {
                enabled: true,
                bootstrap: [
                    "router.bittorrent.com:6881",
                    "dht.transmissionbt.com:6881",
                    "router.utorrent.com:6881",
                ]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            },
            lsd: Lsd {
                enabled: true,
                interface: String::new(),
            },
            trackers: Trackers {
                announces_per_host: 4,
                announces_at_once: 64,
                host_gap_ms: 20,
            },
            hooks: Hooks {
                on_complete: None,
                on_error: None,
                timeout_s: 60,
                max_running: 4,
            },
            storage: Storage {
                preallocate: Preallocate::Sparse,
                allow_symlinks_inside: false,
                serve_reads: ServeReads::Auto,
            },
        }
    }
}

/// Defaults for the process's own environment.
impl Default for Config {
    fn default() -> Config {
        Config::default_for_env(&crate::paths::process_env())
    }
}

/// Whether a reload can apply the key (`"limits.cache_mib"`, or a
/// `share.categories.NAME.*` key); `None` for an unknown key.
pub fn is_live(dotted: &str) -> Option<bool> {
    if dotted.starts_with("share.categories.") {
        return Some(true);
    }
    KEYS.iter()
        .find(|spec| spec.dotted() == dotted)
        .map(|spec| spec.live == Live::Live)
}
