//! The schema, as numbered migrations embedded in the binary and applied in
//! order, each in its own transaction, recorded in `schema_version`. Run
//! under a session advisory lock, so nodes starting at once take turns: the
//! first applies what is missing, the others find nothing left to do.

use deadpool_postgres::tokio_postgres::{self, NoTls};

use super::DatabaseUrl;
use crate::store::{Result, StoreError};

/// Every migration: its number, its name, its SQL. Append only; never edit
/// one that has shipped.
const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "initial", include_str!("migrations/0001_initial.sql"))];

/// The advisory lock key migrations take turns on.
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6d69_6772;

/// Brings the database's schema up to date; returns the versions applied
/// (none when it already was). A database migrated by a newer hookshape
/// is refused rather than written with an older idea of the schema.
pub async fn migrate(url: &DatabaseUrl) -> Result<Vec<i32>> {
    let (mut client, connection) = url.config().connect(NoTls).await?;
    let driver = tokio::spawn(connection);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    let applied = apply(&mut client).await;
    // Closing the session releases the lock, whatever happened.
    drop(client);
    let _ = driver.await;
    applied
}

async fn apply(client: &mut tokio_postgres::Client) -> Result<Vec<i32>> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_version (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
    let current: i32 = client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await?
        .get(0);
    let known = MIGRATIONS.last().map_or(0, |m| m.0);
    if current > known {
        return Err(StoreError::Backend(
            format!(
                "the database's schema is at version {current}, newer than this hookshape knows ({known}): upgrade hookshape"
            )
            .into(),
        ));
    }
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_version (version, name) VALUES ($1, $2)",
            &[&version, &name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(version, name, "database schema migrated");
        applied.push(version);
    }
    Ok(applied)
}
