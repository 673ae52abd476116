//! SQL on the local server of a [`PgNode`]: the connection settings (socket or TCP, the
//! superuser's password through the tokio-postgres API), the persistent monitoring connection,
//! bounded queries, redaction of passwords from error texts, `CHECKPOINT`, and the live-WAL
//! reader that gets a connection of its own.
//!
//! Every connection to the local server is configured here, and the HA loop's queries all go
//! through `query`, so its timeout, reconnect and redaction rules hold for each of them (role DDL
//! runs on a session of its own from `connect`, the live-WAL reader on a connection of its own
//! from `connect_config`).

use std::time::Duration;

use tokio::time::timeout;

use super::{PgNode, SLOW_TIMEOUT};
use crate::postgres::{LiveWal, PgError};

/// Connect timeout for the local monitoring connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/patroni` waits for live WAL positions before answering with the published ones
/// (peers probe it with a 2 s timeout).
const LIVE_WAL_BOUND: Duration = Duration::from_millis(500);

impl PgNode {
    /// A reader of the live WAL positions for the REST API, on a connection of its own.
    pub fn live_wal(&self) -> LiveWal {
        LiveWal::new(self.connect_config(), LIVE_WAL_BOUND)
    }

    /// The tokio-postgres config for the local server (socket or TCP, superuser). The
    /// password is set through the API and never rendered into a string.
    fn connect_config(&self) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        let live = self.live();
        let su = &live.authentication.superuser;
        c.user(&su.username)
            .dbname("postgres")
            .application_name("pgkeel")
            .connect_timeout(CONNECT_TIMEOUT);
        if let Some(pw) = &su.password {
            c.password(pw.as_bytes());
        }
        let (hosts, port) = self.listen();
        if self.cfg.use_unix_socket {
            c.host_path(self.socket_dir());
        } else {
            let host = match hosts.first().map(String::as_str) {
                None | Some("0.0.0.0") | Some("*") => "127.0.0.1",
                Some("::") => "::1",
                Some(h) => h,
            };
            c.host(host);
        }
        c.port(port);
        c
    }

    /// Replaces every known password in `msg` (defence in depth for server error texts).
    fn redact(&self, msg: String) -> String {
        let secrets = match self.secrets.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        secrets.iter().fold(msg, |m, s| {
            m.replace(s.as_str(), "<redacted>")
                .replace(&s.replace('\'', "''"), "<redacted>")
        })
    }

    pub(super) fn query_error(&self, what: &str, e: &tokio_postgres::Error) -> PgError {
        let message = match e.as_db_error() {
            Some(db) => format!("{}: {}", db.severity(), db.message()),
            None => e.to_string(),
        };
        PgError::Query {
            what: what.to_string(),
            message: self.redact(message),
            sqlstate: e.code().map(|c| c.code().to_string()),
        }
    }

    pub(super) async fn connect(&self) -> Result<tokio_postgres::Client, PgError> {
        let cfg = self.connect_config();
        let (client, connection) = timeout(CONNECT_TIMEOUT, cfg.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| PgError::Connect(format!("timed out after {CONNECT_TIMEOUT:?}")))?
            .map_err(|e| PgError::Connect(self.redact(e.to_string())))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// Runs `sql` on the persistent local connection, reconnecting when needed; drops the
    /// connection on any failure so the next call starts afresh.
    pub(super) async fn query(
        &self,
        what: &str,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        bound: Duration,
    ) -> Result<Vec<tokio_postgres::Row>, PgError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            *guard = Some(self.connect().await?);
        }
        let Some(client) = guard.as_ref() else {
            return Err(PgError::Connect("no connection".into()));
        };
        let res = timeout(bound, client.query(sql, params)).await;
        match res {
            Ok(Ok(rows)) => Ok(rows),
            Ok(Err(e)) => {
                let err = self.query_error(what, &e);
                if client.is_closed() || e.as_db_error().is_none() {
                    *guard = None;
                }
                Err(err)
            }
            Err(_) => {
                *guard = None;
                Err(PgError::Timeout {
                    what: what.to_string(),
                    timeout: bound,
                })
            }
        }
    }

    /// Runs `CHECKPOINT`: the body of [`PostgresControl::checkpoint`].
    ///
    /// [`PostgresControl::checkpoint`]: crate::postgres::PostgresControl::checkpoint
    pub(super) async fn checkpoint(&self) -> Result<(), PgError> {
        self.query("CHECKPOINT", "CHECKPOINT", &[], SLOW_TIMEOUT)
            .await
            .map(|_| ())
    }

    /// Runs with `synchronous_standby_names` = `value` (`None`: the configuration files'
    /// own setting) through `ALTER SYSTEM`, so the value the primary decided survives a restart
    /// of the agent or of the server, then reloads. On a primary a little WAL is written
    /// afterwards (without waiting for a standby) so the standbys report a position past the
    /// change at once (Patroni does the same).
    pub(super) async fn set_synchronous_standby_names(
        &self,
        value: Option<&str>,
    ) -> Result<(), PgError> {
        let sql = match value {
            Some(v) => format!(
                "ALTER SYSTEM SET synchronous_standby_names = {}",
                crate::postgres::conf::quote_literal(v)
            ),
            None => "ALTER SYSTEM RESET synchronous_standby_names".to_string(),
        };
        self.query("synchronous_standby_names", &sql, &[], CONNECT_TIMEOUT)
            .await?;
        self.query(
            "reload",
            "SELECT pg_catalog.pg_reload_conf()",
            &[],
            CONNECT_TIMEOUT,
        )
        .await?;
        const NUDGE: &str = "DO $$ BEGIN IF NOT pg_catalog.pg_is_in_recovery() THEN \
            SET LOCAL synchronous_commit = 'off'; PERFORM pg_catalog.txid_current(); \
            END IF; END; $$";
        if let Err(e) = self.query("WAL nudge", NUDGE, &[], CONNECT_TIMEOUT).await {
            tracing::debug!(error = %e, "could not write WAL after changing synchronous_standby_names");
        }
        Ok(())
    }
}
