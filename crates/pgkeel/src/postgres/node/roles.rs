//! Role DDL after bootstrap for a [`PgNode`]: the superuser's password, the replication and
//! rewind roles (with Patroni's grants) and the legacy `bootstrap.users`.
//!
//! Kept apart because it is where passwords are sent to the server: in a dedicated session with
//! statement logging turned off, quoted as literals, never logged.

use tokio::time::timeout;

use super::{PgNode, SLOW_TIMEOUT};
use crate::config::{BootstrapUser, PgAuthentication};
use crate::postgres::{PgError, conf};

impl PgNode {
    /// Sets the superuser password and creates the roles, within a bound: the body of
    /// [`PostgresControl::create_roles`].
    ///
    /// [`PostgresControl::create_roles`]: crate::postgres::PostgresControl::create_roles
    pub(super) async fn create_roles(
        &self,
        auth: &PgAuthentication,
        users: &[BootstrapUser],
    ) -> Result<(), PgError> {
        timeout(SLOW_TIMEOUT, self.create_roles_inner(auth, users))
            .await
            .map_err(|_| PgError::Timeout {
                what: "creating roles".into(),
                timeout: SLOW_TIMEOUT,
            })?
    }

    /// Upserts a role; `options` are trusted SQL keywords.
    async fn upsert_role(
        &self,
        client: &tokio_postgres::Client,
        name: &str,
        options: &str,
        password: Option<&str>,
    ) -> Result<(), PgError> {
        let what = format!("creating role {name}");
        let exists = client
            .query_opt(
                "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1",
                &[&name],
            )
            .await
            .map_err(|e| self.query_error(&what, &e))?
            .is_some();
        let mut sql = format!(
            "{} ROLE {} WITH {options}",
            if exists { "ALTER" } else { "CREATE" },
            conf::quote_ident(name)
        );
        if let Some(pw) = password {
            sql.push_str(" PASSWORD ");
            sql.push_str(&conf::quote_literal(pw));
        }
        client
            .batch_execute(&sql)
            .await
            .map_err(|e| self.query_error(&what, &e))
    }

    async fn create_roles_inner(
        &self,
        auth: &PgAuthentication,
        users: &[BootstrapUser],
    ) -> Result<(), PgError> {
        // A dedicated session with statement logging off, so no password reaches the server
        // log even when the user configured log_statement = 'all' or ddl.
        let client = self.connect().await?;
        client
            .batch_execute(
                "SET log_statement TO 'none'; SET log_min_duration_statement TO -1; \
                 SET log_min_error_statement TO 'panic'; SET log_duration TO off; \
                 SET synchronous_commit TO 'local'",
            )
            .await
            .map_err(|e| self.query_error("disabling statement logging", &e))?;
        let su = &auth.superuser;
        if let Some(pw) = &su.password {
            let sql = format!(
                "ALTER ROLE {} WITH PASSWORD {}",
                conf::quote_ident(&su.username),
                conf::quote_literal(pw)
            );
            client
                .batch_execute(&sql)
                .await
                .map_err(|e| self.query_error("setting the superuser password", &e))?;
        }
        let repl = &auth.replication;
        if repl.username != su.username {
            self.upsert_role(
                &client,
                &repl.username,
                "LOGIN REPLICATION",
                repl.password.as_deref(),
            )
            .await?;
        }
        if let Some(rw) = &auth.rewind
            && rw.username != su.username
        {
            self.upsert_role(&client, &rw.username, "LOGIN", rw.password.as_deref())
                .await?;
            let ident = conf::quote_ident(&rw.username);
            let grants: String = [
                "pg_catalog.pg_ls_dir(text, boolean, boolean)",
                "pg_catalog.pg_stat_file(text, boolean)",
                "pg_catalog.pg_read_binary_file(text)",
                "pg_catalog.pg_read_binary_file(text, bigint, bigint, boolean)",
            ]
            .iter()
            .map(|f| format!("GRANT EXECUTE ON FUNCTION {f} TO {ident};"))
            .collect();
            client
                .batch_execute(&grants)
                .await
                .map_err(|e| self.query_error("granting pg_rewind functions", &e))?;
        }
        for user in users {
            let mut opts: Vec<String> = Vec::new();
            for o in &user.options {
                let ok = !o.is_empty()
                    && o.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ' ' || c == '-');
                if !ok {
                    return Err(PgError::Refused(format!(
                        "bootstrap user {}: option {o:?} is not a plain role option",
                        user.name
                    )));
                }
                opts.push(o.to_ascii_uppercase());
            }
            if !opts.iter().any(|o| o == "LOGIN" || o == "NOLOGIN") {
                opts.insert(0, "LOGIN".into());
            }
            self.upsert_role(
                &client,
                &user.name,
                &opts.join(" "),
                user.password.as_deref(),
            )
            .await?;
        }
        Ok(())
    }
}
