//! What the interop tests (`tests/common`) and the benchmarks (`bench/`) share: how to run
//! the real clients on loopback and tell whether they are installed, how to read the
//! tracker's peer list, and how to signal a child's process group. Test support only:
//! nothing in the engine or the binary depends on it.

pub mod clients;
pub mod process;
pub mod tracker;
