//! Exit codes a script can rely on, and the error type that carries one.

/// Process exit codes. Documented in `--help` and README.md; never renumber them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything worked (for `verify`: every piece is good).
    Ok = 0,
    /// `verify` ran, and some pieces are missing or bad.
    Incomplete = 1,
    // 2 is clap's: the command line itself is wrong.
    /// The torrent, magnet link or other input is invalid or unsafe.
    BadInput = 3,
    /// A file could not be read or written.
    Io = 4,
    /// The runtime cannot start here (io_uring disabled, memlock too low, a shard failed).
    Runtime = 5,
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e as u8)
    }
}

/// An error with the exit code it should end the process with.
#[derive(Debug)]
pub struct Failure {
    pub code: Exit,
    pub error: anyhow::Error,
}

pub type Outcome = Result<Exit, Failure>;

/// Attaches an exit code to any error: `.or_exit(Exit::Io)?`.
pub trait OrExit<T> {
    fn or_exit(self, code: Exit) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> OrExit<T> for Result<T, E> {
    fn or_exit(self, code: Exit) -> Result<T, Failure> {
        self.map_err(|e| Failure {
            code,
            error: e.into(),
        })
    }
}

impl Failure {
    pub fn new(code: Exit, error: anyhow::Error) -> Self {
        Self { code, error }
    }
}

impl From<ccbt_shards::ShardError> for Failure {
    fn from(e: ccbt_shards::ShardError) -> Self {
        Failure::new(Exit::Runtime, e.into())
    }
}

impl From<ccbt_shards::swarm::CommandError> for Failure {
    fn from(e: ccbt_shards::swarm::CommandError) -> Self {
        use ccbt_shards::swarm::CommandError;
        let code = match &e {
            CommandError::Fault(_) => Exit::Io,
            CommandError::BadFileIndex { .. } => Exit::BadInput,
            _ => Exit::Runtime,
        };
        Failure::new(code, e.into())
    }
}
