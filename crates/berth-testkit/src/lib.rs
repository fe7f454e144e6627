//! berth-testkit (being built).
