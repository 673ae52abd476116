//! Why the agent stops: the errors `run` returns.

/// Errors that stop the agent.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The HA core decided the node must not go on (system ID mismatch, failed bootstrap...).
    #[error("{message}")]
    Fatal {
        /// The core's message (Patroni's wording).
        message: String,
        /// Patroni logs it at CRITICAL rather than ERROR.
        critical: bool,
    },
    /// The REST API could not listen.
    #[error("cannot start the REST API on {addr}: {err}")]
    Api {
        /// Listen address.
        addr: String,
        /// Why.
        err: std::io::Error,
    },
    /// Another agent with this name is running.
    #[error("Can't start; there is already a node named '{0}' running")]
    DuplicateName(String),
}

impl AgentError {
    /// Whether Patroni logs this reason at CRITICAL (`logger.fatal`) rather than ERROR: a
    /// duplicate member name and a system ID mismatch. The caller that logs the error uses it.
    pub fn is_critical(&self) -> bool {
        match self {
            AgentError::Fatal { critical, .. } => *critical,
            AgentError::DuplicateName(_) => true,
            AgentError::Api { .. } => false,
        }
    }
}
