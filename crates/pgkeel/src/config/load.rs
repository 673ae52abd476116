//! Loading (stub).
use super::{Config, ConfigError, ConfigWarning};
/// A loaded config with its warnings.
#[derive(Debug)]
pub struct LoadedConfig {
    /// The config.
    pub config: Config,
    /// Warnings.
    pub warnings: Vec<ConfigWarning>,
}
/// Loads a config file.
pub fn load_config(_path: &std::path::Path) -> Result<LoadedConfig, ConfigError> {
    Err(ConfigError("not implemented".into()))
}
/// Loads config text.
pub fn load_config_from_str(
    _text: &str,
    _source: &std::path::Path,
    _env: &[(String, String)],
) -> Result<LoadedConfig, ConfigError> {
    Err(ConfigError("not implemented".into()))
}
