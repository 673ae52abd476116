//! kit
pub mod etcd;
pub mod ports;
