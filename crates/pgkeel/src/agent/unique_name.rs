//! Refusing to start next to a live agent of the same name (Patroni's `ensure_unique_name`).

use super::{Agent, AgentError};
use std::time::Duration;

impl Agent {
    /// Refuses to start when a live agent already answers for this member name (Patroni's
    /// `ensure_unique_name`).
    pub(super) async fn ensure_unique_name(&self) -> Result<(), AgentError> {
        let Ok(cluster) = self.read_cluster().await else {
            return Ok(());
        };
        let Some(api) = cluster
            .member(&self.cfg.name)
            .and_then(|m| m.api_url.clone())
        else {
            return Ok(());
        };
        let url = api.replace("/patroni", "/liveness");
        let probe = self
            .http
            .get(&url)
            .timeout(Duration::from_millis(500))
            .send()
            .await;
        if probe.is_ok() {
            return Err(AgentError::DuplicateName(self.cfg.name.clone()));
        }
        Ok(())
    }
}
