//! Configuration errors (stub).
/// A configuration error.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
/// A configuration warning.
#[derive(Debug, Clone)]
pub struct ConfigWarning(pub String);
