//! [`LiveWal`]: the local server's WAL positions read at the moment a client asks.
//!
//! Other nodes compare their position with this node's `GET /patroni` before they race for the
//! leader key (the loser logs `... has equally tolerable WAL position and priority ...`). The
//! agent publishes its status once per HA cycle, so a position read from that could be a loop
//! old: after the primary shut down, each replica would see the other behind and the winner
//! would be random instead of the one with the higher `failover_priority`. Patroni queries
//! PostgreSQL on every `/patroni` request; so does this, on its own connection, so REST traffic
//! never waits for (or delays) the HA loop's queries.

use std::time::Duration;

use pgkeel_ha::pg::Lsn;
use tokio::time::timeout;

/// The WAL positions of the local server at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalNow {
    /// `pg_is_in_recovery()`.
    pub in_recovery: bool,
    /// A primary's `pg_current_wal_lsn()`.
    pub current: Option<Lsn>,
    /// A replica's `pg_last_wal_receive_lsn()`.
    pub received: Option<Lsn>,
    /// A replica's `pg_last_wal_replay_lsn()`.
    pub replayed: Option<Lsn>,
    /// A replica has a WAL receiver process (`pg_stat_wal_receiver` has a row).
    pub wal_receiver: bool,
}

/// Reads [`WalNow`] over a connection of its own (opened on first use, dropped on any error).
pub struct LiveWal {
    config: tokio_postgres::Config,
    client: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    bound: Duration,
}

impl std::fmt::Debug for LiveWal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The config holds the superuser's password: never print it.
        f.debug_struct("LiveWal")
            .field("bound", &self.bound)
            .finish_non_exhaustive()
    }
}

const SQL: &str = "SELECT pg_catalog.pg_is_in_recovery(), \
    CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE pg_catalog.pg_current_wal_lsn()::text END, \
    pg_catalog.pg_last_wal_receive_lsn()::text, \
    pg_catalog.pg_last_wal_replay_lsn()::text, \
    EXISTS (SELECT 1 FROM pg_catalog.pg_stat_wal_receiver WHERE pid IS NOT NULL)";

impl LiveWal {
    /// A reader connecting with `config`; connecting plus the query take at most `bound`.
    pub(crate) fn new(config: tokio_postgres::Config, bound: Duration) -> Self {
        LiveWal {
            config,
            client: tokio::sync::Mutex::new(None),
            bound,
        }
    }

    /// The positions now, or `None` when the server did not answer within the bound (the
    /// caller then uses what the agent published).
    pub async fn read(&self) -> Option<WalNow> {
        let mut guard = timeout(self.bound, self.client.lock()).await.ok()?;
        let answer = timeout(self.bound, async {
            if guard.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
                let (client, connection) = self.config.connect(tokio_postgres::NoTls).await.ok()?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                *guard = Some(client);
            }
            let row = guard.as_ref()?.query_one(SQL, &[]).await.ok()?;
            let lsn = |i: usize| -> Option<Lsn> {
                row.try_get::<_, Option<String>>(i)
                    .ok()
                    .flatten()
                    .and_then(|s| s.parse().ok())
            };
            Some(WalNow {
                in_recovery: row.try_get(0).ok()?,
                current: lsn(1),
                received: lsn(2),
                replayed: lsn(3),
                wal_receiver: row.try_get(4).unwrap_or(true),
            })
        })
        .await
        .ok()
        .flatten();
        if answer.is_none() {
            *guard = None;
        }
        answer
    }
}
