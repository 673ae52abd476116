//! The data directory of a [`PgNode`] as a directory: creating it empty with the right owner and
//! mode, making a freshly written one durable (`syncfs`), removing it, and the dynamic
//! configuration cache (`patroni.dynamic.json`) kept in it.

use std::path::Path;

use super::{PgNode, SLOW_TIMEOUT};
use crate::postgres::os::OsUser;
use crate::postgres::{PgError, dynamic_cache, os};

impl PgNode {
    /// Creates the (empty) data directory for initdb or pg_basebackup, mode 0700, and returns
    /// the OS user the tools run as: the owner of an existing directory (an empty directory
    /// owned by a non-root user keeps its owner), else `postgres`.
    pub(super) fn prepare_empty_data_dir(&self) -> Result<Option<OsUser>, PgError> {
        let dir = &self.cfg.data_dir;
        let user = match std::fs::metadata(dir) {
            Ok(_) => self.os_user()?,
            Err(_) => os::resolve_os_user(Path::new("/nonexistent-pgkeel"))?,
        };
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(|e| PgError::Io {
                what: format!("creating {}", parent.display()),
                source: e,
            })?;
        }
        os::ensure_dir(dir, 0o700, user.as_ref())?;
        Ok(user)
    }

    /// Makes a data directory that initdb or pg_basebackup wrote with `--no-sync` durable.
    ///
    /// Both tools fsync every file one by one, each call waiting for its own journal commit:
    /// about 0.6 s of initdb's 1.4 s on this project's disk, and as much again for a base
    /// backup. One `syncfs(2)` of the file system holding the directory gives the same
    /// guarantee in one commit; it is what PostgreSQL 16 does with `--sync-method=syncfs`, and
    /// what `recovery_init_sync_method=syncfs` already does at crash recovery. Where syncfs is
    /// refused, `initdb --sync-only` fsyncs file by file as before. Nothing uses the directory
    /// before this returns.
    pub(super) async fn sync_data_dir(&self, user: Option<&OsUser>) -> Result<(), PgError> {
        let dir = self.cfg.data_dir.clone();
        let synced = tokio::task::spawn_blocking(move || {
            let d = std::fs::File::open(&dir)?;
            nix::unistd::syncfs(&d).map_err(std::io::Error::from)
        })
        .await;
        let why = match synced {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        tracing::warn!(
            "syncfs of {} failed ({why}); syncing file by file",
            self.cfg.data_dir.display()
        );
        let args = vec![
            "--sync-only".into(),
            "-D".into(),
            self.cfg.data_dir.clone().into(),
        ];
        os::run_tool(&self.tool("initdb", args, SLOW_TIMEOUT), user)
            .await
            .map(|_| ())
    }

    /// Removes the data directory (only the configured one, never `/`).
    pub(super) fn remove_dir_now(&self) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        if dir.parent().is_none() || dir.as_os_str().is_empty() {
            return Err(PgError::Refused(format!(
                "refusing to remove data directory {}",
                dir.display()
            )));
        }
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PgError::Io {
                what: format!("removing {}", dir.display()),
                source: e,
            }),
        }
    }

    /// Deletes the configured data directory; refuses while postgres runs: the body of
    /// [`PostgresControl::remove_data_dir`].
    ///
    /// [`PostgresControl::remove_data_dir`]: crate::postgres::PostgresControl::remove_data_dir
    pub(super) async fn remove_data_dir(&self) -> Result<(), PgError> {
        self.ensure_stopped("remove the data directory")?;
        *self.client.lock().await = None;
        let dir = self.cfg.data_dir.clone();
        if dir.parent().is_none() || dir.as_os_str().is_empty() {
            return Err(PgError::Refused(format!(
                "refusing to remove data directory {}",
                dir.display()
            )));
        }
        // A large data directory takes a while to delete: keep it off the async workers so the
        // lease keeper and the REST API are never held up.
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(PgError::Io {
                what: format!("removing {}", dir.display()),
                source: e,
            }),
        }
    }

    /// Renames the data directory to `<data_dir>.failed`: the body of
    /// [`PostgresControl::move_data_dir_aside`].
    ///
    /// [`PostgresControl::move_data_dir_aside`]: crate::postgres::PostgresControl::move_data_dir_aside
    pub(super) async fn move_data_dir_aside(&self) -> Result<(), PgError> {
        let dir = &self.cfg.data_dir;
        let mut aside = dir.clone().into_os_string();
        aside.push(".failed");
        tokio::fs::rename(dir, &aside)
            .await
            .map_err(|source| PgError::Io {
                what: format!("moving {} aside", dir.display()),
                source,
            })
    }

    /// Caches `config` as `patroni.dynamic.json` in the data directory (see
    /// [`dynamic_cache`]).
    pub fn save_dynamic_cache(
        &self,
        config: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<(), PgError> {
        dynamic_cache::save(&self.cfg.data_dir, config, self.os_user()?.as_ref())
    }

    /// The cached dynamic configuration of the data directory, if any.
    pub fn load_dynamic_cache(
        &self,
    ) -> Result<Option<serde_json::Map<String, serde_json::Value>>, dynamic_cache::CacheError> {
        dynamic_cache::load(&self.cfg.data_dir)
    }
}
