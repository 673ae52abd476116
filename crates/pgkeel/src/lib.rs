//! pgkeel: PostgreSQL high availability, a drop-in replacement for Patroni + etcd.
//!
//! # Layout
//! * `config`: Patroni-compatible YAML + `PATRONI_*` env, typed and validated.
//! * `dcs`: the etcd v3 seam (`Dcs` trait), Patroni's key layout, leases and watches.
//! * `postgres`: the PostgreSQL seam (`PostgresControl` trait): initdb, start/stop, clone, probe.
//! * `agent`: the HA loop runtime: observe -> `pgkeel_ha::Ha::step` -> execute.
//! * `api`: the Patroni-compatible REST API, served from the agent's last published state.
//! * `ctl`: `pgkeelctl`, patronictl's commands and output.
//!
//! The decisions themselves live in the pure crate `pgkeel_ha`; this crate only performs I/O.

pub mod agent;
pub mod api;
pub mod config;
pub mod ctl;
pub mod dcs;
pub mod logging;
pub mod postgres;
