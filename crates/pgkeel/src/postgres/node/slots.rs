//! Replication slots of the local server of a [`PgNode`]: list, create (physical, reserving
//! WAL at once) and drop, each one guarded SQL statement.

use super::{PgNode, QUERY_TIMEOUT};
use crate::postgres::{PgError, SlotInfo};

impl PgNode {
    /// Lists replication slots: the body of [`PostgresControl::list_slots`].
    ///
    /// [`PostgresControl::list_slots`]: crate::postgres::PostgresControl::list_slots
    pub(super) async fn list_slots(&self) -> Result<Vec<SlotInfo>, PgError> {
        let rows = self
            .query(
                "listing replication slots",
                "SELECT slot_name::text, slot_type, active, restart_lsn::text \
                 FROM pg_catalog.pg_replication_slots ORDER BY slot_name",
                &[],
                QUERY_TIMEOUT,
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| SlotInfo {
                name: r.get(0),
                slot_type: r.get(1),
                active: r.get(2),
                restart_lsn: r.get::<_, Option<String>>(3).and_then(|s| s.parse().ok()),
            })
            .collect())
    }

    /// Creates a physical slot unless it exists: the body of
    /// [`PostgresControl::create_physical_slot`].
    ///
    /// [`PostgresControl::create_physical_slot`]: crate::postgres::PostgresControl::create_physical_slot
    pub(super) async fn create_physical_slot(&self, name: &str) -> Result<bool, PgError> {
        let rows = self
            .query(
                "creating a replication slot",
                "SELECT pg_catalog.pg_create_physical_replication_slot($1, true) \
                 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1)",
                &[&name],
                QUERY_TIMEOUT,
            )
            .await?;
        Ok(!rows.is_empty())
    }

    /// Drops a slot unless it is active: the body of [`PostgresControl::drop_slot`].
    ///
    /// [`PostgresControl::drop_slot`]: crate::postgres::PostgresControl::drop_slot
    pub(super) async fn drop_slot(&self, name: &str) -> Result<bool, PgError> {
        let rows = self
            .query(
                "dropping a replication slot",
                "SELECT pg_catalog.pg_drop_replication_slot(slot_name) \
                 FROM pg_catalog.pg_replication_slots WHERE slot_name = $1 AND NOT active",
                &[&name],
                QUERY_TIMEOUT,
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
