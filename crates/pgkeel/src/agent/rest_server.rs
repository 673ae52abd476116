//! The REST API server as the agent runs it: started on `restapi.listen`, and moved to a new
//! address when a reload changes it (Patroni's `RestApiServer.reload_config`). The new address
//! is bound before the old server is told to stop, so a failed bind leaves the API where it was.

use tokio::sync::watch;

/// The running REST server: where it listens and how to stop it alone (the agent's own stop
/// signal stops it too).
pub(super) struct RestServer {
    listen: String,
    state: crate::api::ApiState,
    agent_stop: watch::Receiver<bool>,
    stop_this: watch::Sender<bool>,
}

impl RestServer {
    /// Binds `listen` and serves the API there until the agent stops or the server moves.
    pub(super) async fn start(
        listen: &str,
        state: crate::api::ApiState,
        agent_stop: watch::Receiver<bool>,
    ) -> std::io::Result<RestServer> {
        let listener = crate::api::server::bind(listen).await?;
        let stop_this = spawn_server(listener, state.clone(), agent_stop.clone());
        Ok(RestServer {
            listen: listen.to_string(),
            state,
            agent_stop,
            stop_this,
        })
    }

    /// Where it listens now.
    pub(super) fn listen(&self) -> &str {
        &self.listen
    }

    /// Serves on `listen` from now on: bound first, then the old server stops accepting (its
    /// open connections finish their requests). On a bind error nothing changes.
    pub(super) async fn move_to(&mut self, listen: &str) -> std::io::Result<()> {
        let listener = crate::api::server::bind(listen).await?;
        let stop_new = spawn_server(listener, self.state.clone(), self.agent_stop.clone());
        let stop_old = std::mem::replace(&mut self.stop_this, stop_new);
        let _ = stop_old.send(true);
        self.listen = listen.to_string();
        Ok(())
    }
}

/// Serves on `listener` until the agent stops or the returned sender says so.
fn spawn_server(
    listener: tokio::net::TcpListener,
    state: crate::api::ApiState,
    mut agent_stop: watch::Receiver<bool>,
) -> watch::Sender<bool> {
    let (stop_this, mut this_stop) = watch::channel(false);
    tokio::spawn(async move {
        let stopped = async move {
            tokio::select! {
                _ = agent_stop.wait_for(|s| *s) => {}
                _ = this_stop.wait_for(|s| *s) => {}
            }
        };
        if let Err(e) = crate::api::serve(listener, state, stopped).await {
            tracing::error!("REST API stopped: {e}");
        }
    });
    stop_this
}
