//! Peer wire protocol (placeholder; being written).
