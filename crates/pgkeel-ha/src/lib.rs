//! The pure HA core of pgkeel: no I/O, no clock, no async.
//!
//! # Layout
//! * `time`: `MonoTime`, the only notion of time here (passed in by the caller).
//! * `pg`: what the agent observed about its local PostgreSQL (`LocalPostgres`, `Lsn`).
//! * `cluster`: the typed DCS snapshot (`Cluster`, `Member`, `Leader`, `GlobalConfig`, ...).
//! * `keys`: Patroni's key layout and the lenient value codec (garbage never panics).
//! * `ha`: `Ha::step(&Observation) -> Decision`, the HA rules.
#![warn(missing_docs)]
// Values from the DCS and the configuration reach durations and deadlines here; a `u64::MAX`
// `loop_wait` once panicked every agent. Arithmetic in the core is checked or saturating.
#![cfg_attr(not(test), deny(clippy::arithmetic_side_effects))]

pub mod cluster;
pub mod ha;
pub mod keys;
pub mod pg;
pub mod sync;
pub mod time;

pub use ha::{Action, Decision, Ha, HaConfig, Observation};
