//! Building a [`PgNode`]'s data directory with PostgreSQL's tools: `initdb` (a new cluster),
//! `pg_basebackup` (a copy of another member) and `pg_rewind` (a former primary put back onto
//! the new timeline), with single-user crash recovery first when the server was not shut down
//! cleanly.
//!
//! These are the long-running tool invocations; the data directory handling they rely on
//! (creating it empty, syncing, removing a partial copy) is in `datadir`.

use std::ffi::OsString;
use std::time::Duration;

use pgkeel_ha::pg::DataDir;
use tokio::time::Instant;

use super::{PgNode, SLOW_TIMEOUT};
use crate::postgres::{PgError, conf, os};

impl PgNode {
    /// Creates a new cluster with `initdb`: the body of [`PostgresControl::initdb`].
    ///
    /// [`PostgresControl::initdb`]: crate::postgres::PostgresControl::initdb
    pub(super) async fn initdb(&self, extra_args: &[String]) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        if let (DataDir::Initialized { .. } | DataDir::Inaccessible(_), _) =
            self.data_dir_state().await
        {
            return Err(PgError::Refused(format!(
                "initdb: data directory {} is not empty",
                dir.display()
            )));
        }
        let user = self.prepare_empty_data_dir()?;
        let live = self.live();
        let su = &live.authentication.superuser;
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            dir.clone().into(),
            format!("--username={}", su.username).into(),
        ];
        let pwfile = match &su.password {
            Some(pw) => Some(os::SecretFile::create(
                format!("{pw}\n").as_bytes(),
                user.as_ref(),
            )?),
            None => None,
        };
        if let Some(f) = &pwfile {
            let mut a = OsString::from("--pwfile=");
            a.push(&f.path);
            args.push(a);
        }
        args.extend(extra_args.iter().map(OsString::from));
        args.push("--no-sync".into());
        let mut tool = self.tool("initdb", args, SLOW_TIMEOUT);
        tool.env.clear();
        let res = os::run_tool(&tool, user.as_ref()).await;
        drop(pwfile);
        res?;
        self.sync_data_dir(user.as_ref()).await
    }

    /// Clones the data directory with `pg_basebackup`: the body of [`PostgresControl::basebackup`].
    ///
    /// [`PostgresControl::basebackup`]: crate::postgres::PostgresControl::basebackup
    pub(super) async fn basebackup(
        &self,
        from_host: &str,
        from_port: u16,
        extra_args: &[String],
        bound: Duration,
    ) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        if !matches!(self.data_dir_state().await.0, DataDir::Empty) {
            return Err(PgError::Refused(format!(
                "basebackup: data directory {} is not empty",
                dir.display()
            )));
        }
        let user = self.prepare_empty_data_dir()?;
        let port = from_port.to_string();
        let live = self.live();
        let ci = conf::conninfo(&[
            ("host", from_host),
            ("port", &port),
            ("user", &live.authentication.replication.username),
            ("application_name", &self.member_name),
        ]);
        let mut args: Vec<OsString> = vec![
            "-D".into(),
            dir.clone().into(),
            "-X".into(),
            "stream".into(),
            "-c".into(),
            "fast".into(),
            "-w".into(),
            format!("--dbname={ci}").into(),
        ];
        args.extend(extra_args.iter().map(OsString::from));
        args.push("--no-sync".into());
        let mut tool = self.tool("pg_basebackup", args, bound);
        tool.env.push(self.pgpass_env());
        let res = match os::run_tool(&tool, user.as_ref()).await {
            Ok(_) => self.sync_data_dir(user.as_ref()).await,
            Err(e) => Err(e),
        };
        if res.is_err() {
            let _ = self.remove_dir_now();
        }
        res
    }

    /// Rewinds a stopped former primary with `pg_rewind`: the body of [`PostgresControl::rewind`].
    ///
    /// [`PostgresControl::rewind`]: crate::postgres::PostgresControl::rewind
    pub(super) async fn rewind(
        &self,
        from_host: &str,
        from_port: u16,
        bound: Duration,
    ) -> Result<(), PgError> {
        self.ensure_stopped("pg_rewind")?;
        let deadline = Instant::now() + bound;
        let cd = self.controldata().await?;
        let clean = matches!(
            cd.state.as_deref(),
            Some("shut down" | "shut down in recovery")
        );
        if !clean {
            tracing::info!(state = ?cd.state, "running single-user crash recovery before pg_rewind");
            self.single_user_recovery(bound).await?;
        }
        let live = self.live();
        let auth = &live.authentication;
        let user = auth.rewind.as_ref().unwrap_or(&auth.superuser);
        let port = from_port.to_string();
        let ci = conf::conninfo(&[
            ("host", from_host),
            ("port", &port),
            ("user", &user.username),
            ("dbname", "postgres"),
        ]);
        let remaining = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1));
        let mut tool = self.tool(
            "pg_rewind",
            vec![
                "-D".into(),
                self.cfg.data_dir.clone().into(),
                format!("--source-server={ci}").into(),
            ],
            remaining,
        );
        tool.env.push(self.pgpass_env());
        os::run_tool(&tool, self.os_user()?.as_ref())
            .await
            .map(|_| ())
    }

    async fn single_user_recovery(&self, bound: Duration) -> Result<(), PgError> {
        // Standby mode is not allowed in single-user mode: move the signal files aside.
        let data = &self.cfg.data_dir;
        let mut moved = Vec::new();
        for sig in ["standby.signal", "recovery.signal"] {
            let p = data.join(sig);
            if p.exists() {
                let aside = data.join(format!("{sig}.pgkeel-aside"));
                std::fs::rename(&p, &aside).map_err(|e| PgError::Io {
                    what: format!("moving {} aside", p.display()),
                    source: e,
                })?;
                moved.push((aside, p));
            }
        }
        let tool = self.tool(
            "postgres",
            vec![
                "--single".into(),
                "-D".into(),
                data.clone().into(),
                "-c".into(),
                "archive_mode=on".into(),
                "-c".into(),
                "archive_command=false".into(),
                "postgres".into(),
            ],
            bound,
        );
        let res = os::run_tool(&tool, self.os_user()?.as_ref()).await;
        for (aside, orig) in moved {
            let _ = std::fs::rename(aside, orig);
        }
        res.map(|_| ())
    }

    fn pgpass_env(&self) -> (&'static str, OsString) {
        ("PGPASSFILE", self.cfg.pgpass.clone().into())
    }
}
