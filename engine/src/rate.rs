//! Transfer-rate estimation (placeholder; being written).
