//! Piece picker (placeholder; being written).
