//! berth-client (being built).
