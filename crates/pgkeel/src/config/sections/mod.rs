//! One builder per section of the configuration file, each turning its part of the merged YAML
//! tree into the typed struct of [`super::Config`] (with key-path errors and warnings).
//! [`super::build`] calls them in file order and assembles the result.

pub(crate) mod bootstrap;
pub(crate) mod ctl;
pub(crate) mod etcd;
pub(crate) mod log;
pub(crate) mod postgresql;
pub(crate) mod restapi;
pub(crate) mod tags;
