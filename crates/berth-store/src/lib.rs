//! berth-store (being built).
