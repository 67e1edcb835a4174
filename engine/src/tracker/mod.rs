//! Tracker codecs (placeholder; being written).
