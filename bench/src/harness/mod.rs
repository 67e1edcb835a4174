//! What every scenario shares: child processes with their CPU and memory use, free
//! loopback ports, and an opentracker that lists only the torrents a scenario names.

pub mod bins;
pub mod ports;
pub mod process;
pub mod tracker;
