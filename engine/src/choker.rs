//! Choking: which peers we upload to (placeholder; being written).
