//! The agent runtime: observe -> `pgkeel_ha::Ha::step` -> execute, plus the lease task.

pub mod published;
