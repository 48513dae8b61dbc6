//! SQLite (WAL) persistence of the control plane: one function per query or
//! per transaction. Secrets never reach this module in the clear except as
//! SHA-256 hashes.

use std::{path::Path, str::FromStr, time::Duration};

use serde::Serialize;
use sqlx::{
    Row, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::domain::NewSignup;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// Opens (creating if needed) the database in WAL mode and migrates it.
pub async fn connect(path: &Path) -> Result<SqlitePool, StoreError> {
    let options = SqliteConnectOptions::from_str("sqlite:")?
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(options)
        .await?;
    sqlx::migrate!("../migrations/control-plane")
        .run(&pool)
        .await?;
    Ok(pool)
}

/// A write transaction that takes SQLite's write lock up front (`BEGIN
/// IMMEDIATE`), so concurrent commands queue on the busy timeout instead of
/// failing when a read lock cannot be upgraded.
async fn write_tx(
    pool: &SqlitePool,
) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

/// Inserts a signup unless the (case-insensitive) email is already listed.
/// Returns whether a row was added.
pub async fn insert_signup(pool: &SqlitePool, s: &NewSignup) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "INSERT INTO signups (email, email_norm, company, note, created_at)
         VALUES (?, ?, ?, ?, ?) ON CONFLICT (email_norm) DO NOTHING",
    )
    .bind(&s.email.display)
    .bind(&s.email.normalized)
    .bind(&s.company)
    .bind(&s.note)
    .bind(now_ms())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct SignupRow {
    pub id: i64,
    pub email: String,
    pub company: Option<String>,
    pub note: Option<String>,
    pub status: String,
    pub created_at: i64,
    pub decided_at: Option<i64>,
    pub tenant: Option<String>,
    pub tenant_state: Option<String>,
    pub phase: Option<String>,
}

const SIGNUP_COLUMNS: &str = "s.id, s.email, s.company, s.note, s.status, s.created_at,
    s.decided_at, t.tenant, t.state AS tenant_state, t.phase
    FROM signups s LEFT JOIN tenants t ON t.signup_id = s.id";

/// Signups, newest first, optionally filtered by status and a search over
/// email, company and note.
pub async fn list_signups(
    pool: &SqlitePool,
    status: Option<&str>,
    search: Option<&str>,
    limit: i64,
) -> Result<Vec<SignupRow>, StoreError> {
    let pattern = search.map(|q| {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = sqlx::query_as::<_, SignupRow>(&format!(
        "SELECT {SIGNUP_COLUMNS}
         WHERE (?1 IS NULL OR s.status = ?1)
           AND (?2 IS NULL OR s.email_norm LIKE ?2 ESCAPE '\\'
                OR lower(coalesce(s.company, '')) LIKE ?2 ESCAPE '\\'
                OR lower(coalesce(s.note, '')) LIKE ?2 ESCAPE '\\')
         ORDER BY s.id DESC LIMIT ?3"
    ))
    .bind(status)
    .bind(pattern)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows)
}

pub async fn get_signup(pool: &SqlitePool, id: i64) -> Result<Option<SignupRow>, StoreError> {
    Ok(
        sqlx::query_as::<_, SignupRow>(&format!("SELECT {SIGNUP_COLUMNS} WHERE s.id = ?"))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

#[derive(Debug, thiserror::Error)]
pub enum DecideError {
    #[error("no such signup")]
    NotFound,
    #[error("the signup is already {0}")]
    AlreadyDecided(String),
    #[error("tenant id {0:?} is already taken")]
    TenantTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for DecideError {
    fn from(e: sqlx::Error) -> Self {
        DecideError::Store(StoreError::Db(e))
    }
}

/// Marks a pending signup approved and records its tenant in `state`, in one
/// transaction (so two admins cannot approve the same signup or take the same id).
pub async fn approve(
    pool: &SqlitePool,
    signup_id: i64,
    tenant: &str,
    state: &str,
) -> Result<(), DecideError> {
    let mut tx = write_tx(pool).await?;
    let status: Option<String> = sqlx::query_scalar("SELECT status FROM signups WHERE id = ?")
        .bind(signup_id)
        .fetch_optional(&mut *tx)
        .await?;
    match status.as_deref() {
        None => return Err(DecideError::NotFound),
        Some("pending") => {}
        Some(other) => return Err(DecideError::AlreadyDecided(other.to_owned())),
    }
    let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM tenants WHERE tenant = ?")
        .bind(tenant)
        .fetch_optional(&mut *tx)
        .await?;
    if taken.is_some() {
        return Err(DecideError::TenantTaken(tenant.to_owned()));
    }
    let now = now_ms();
    sqlx::query("UPDATE signups SET status = 'approved', decided_at = ? WHERE id = ?")
        .bind(now)
        .bind(signup_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("INSERT INTO tenants (tenant, signup_id, state, approved_at) VALUES (?, ?, ?, ?)")
        .bind(tenant)
        .bind(signup_id)
        .bind(state)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    insert_event(&mut tx, tenant, &format!("approved ({state})"), now).await?;
    tx.commit().await?;
    Ok(())
}

/// Undoes [`approve`] when the resource could not be created.
pub async fn undo_approval(
    pool: &SqlitePool,
    signup_id: i64,
    tenant: &str,
) -> Result<(), StoreError> {
    let mut tx = write_tx(pool).await?;
    sqlx::query("DELETE FROM tenant_events WHERE tenant = ?")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM tenants WHERE tenant = ?")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    sqlx::query("UPDATE signups SET status = 'pending', decided_at = NULL WHERE id = ?")
        .bind(signup_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn reject(pool: &SqlitePool, signup_id: i64) -> Result<(), DecideError> {
    let done = sqlx::query(
        "UPDATE signups SET status = 'rejected', decided_at = ? WHERE id = ? AND status = 'pending'",
    )
    .bind(now_ms())
    .bind(signup_id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    match get_signup(pool, signup_id).await? {
        None => Err(DecideError::NotFound),
        Some(row) => Err(DecideError::AlreadyDecided(row.status)),
    }
}

async fn insert_event(
    tx: &mut sqlx::SqliteConnection,
    tenant: &str,
    event: &str,
    at: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO tenant_events (tenant, event, at) VALUES (?, ?, ?)")
        .bind(tenant)
        .bind(event)
        .bind(at)
        .execute(tx)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct TenantRow {
    pub tenant: String,
    pub signup_id: i64,
    pub state: String,
    pub phase: Option<String>,
    pub approved_at: i64,
    pub ready_at: Option<i64>,
    pub provisioning_ms: Option<i64>,
    pub revealed_at: Option<i64>,
}

const TENANT_COLUMNS: &str =
    "tenant, signup_id, state, phase, approved_at, ready_at, provisioning_ms, revealed_at";

pub async fn get_tenant(pool: &SqlitePool, tenant: &str) -> Result<Option<TenantRow>, StoreError> {
    Ok(sqlx::query_as::<_, TenantRow>(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants WHERE tenant = ?"
    ))
    .bind(tenant)
    .fetch_optional(pool)
    .await?)
}

pub async fn list_tenants(pool: &SqlitePool) -> Result<Vec<TenantRow>, StoreError> {
    Ok(sqlx::query_as::<_, TenantRow>(&format!(
        "SELECT {TENANT_COLUMNS} FROM tenants ORDER BY approved_at DESC"
    ))
    .fetch_all(pool)
    .await?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct EventRow {
    pub event: String,
    pub at: i64,
}

pub async fn tenant_events(pool: &SqlitePool, tenant: &str) -> Result<Vec<EventRow>, StoreError> {
    Ok(sqlx::query_as::<_, EventRow>(
        "SELECT event, at FROM tenant_events WHERE tenant = ? ORDER BY id",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?)
}

/// What changed when a phase was observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PhaseChange {
    Unchanged,
    Changed,
    /// The tenant reached `Ready` for the first time; provisioning took this long.
    FirstReady {
        provisioning_ms: i64,
    },
}

/// Records the phase the operator reports for `tenant` (and the transition
/// in its history); the first `Ready` also fixes the provisioning time and
/// makes the tenant's unspent reveal links valid for at least `reveal_ttl`
/// from now (their clock should not run while the customer cannot use them).
pub async fn record_phase(
    pool: &SqlitePool,
    tenant: &str,
    phase: &str,
    reveal_ttl: Duration,
) -> Result<PhaseChange, StoreError> {
    let mut tx = write_tx(pool).await?;
    let row: Option<(Option<String>, i64, Option<i64>, String)> =
        sqlx::query_as("SELECT phase, approved_at, ready_at, state FROM tenants WHERE tenant = ?")
            .bind(tenant)
            .fetch_optional(&mut *tx)
            .await?;
    let Some((previous, approved_at, ready_at, state)) = row else {
        return Ok(PhaseChange::Unchanged);
    };
    if previous.as_deref() == Some(phase) {
        return Ok(PhaseChange::Unchanged);
    }
    let now = now_ms();
    insert_event(&mut tx, tenant, &format!("phase {phase}"), now).await?;
    let mut change = PhaseChange::Changed;
    if phase == "Ready" && ready_at.is_none() {
        let provisioning_ms = (now - approved_at).max(0);
        sqlx::query(
            "UPDATE tenants SET phase = ?, ready_at = ?, provisioning_ms = ?, state = 'ready' WHERE tenant = ?",
        )
        .bind(phase)
        .bind(now)
        .bind(provisioning_ms)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE reveals SET expires_at = max(expires_at, ?) WHERE tenant = ? AND used_at IS NULL AND expires_at > ?",
        )
        .bind(now + reveal_ttl.as_millis() as i64)
        .bind(tenant)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        change = PhaseChange::FirstReady { provisioning_ms };
    } else {
        // Suspension is the admin's decision (state); the phase just follows it.
        let state = match (phase, state.as_str()) {
            ("Ready", "provisioning") => "ready",
            (_, s) => s,
        };
        sqlx::query("UPDATE tenants SET phase = ?, state = ? WHERE tenant = ?")
            .bind(phase)
            .bind(state)
            .bind(tenant)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(change)
}

/// Sets the admin-decided state (suspended, ready, deleted) and records it.
pub async fn set_state(pool: &SqlitePool, tenant: &str, state: &str) -> Result<(), StoreError> {
    let mut tx = write_tx(pool).await?;
    sqlx::query("UPDATE tenants SET state = ? WHERE tenant = ?")
        .bind(state)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    insert_event(&mut tx, tenant, state, now_ms()).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn insert_reveal(
    pool: &SqlitePool,
    token_sha256: &str,
    tenant: &str,
    ttl: Duration,
) -> Result<i64, StoreError> {
    let now = now_ms();
    let expires_at = now + ttl.as_millis() as i64;
    sqlx::query(
        "INSERT INTO reveals (token_sha256, tenant, created_at, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(token_sha256)
    .bind(tenant)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(expires_at)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RevealRow {
    pub tenant: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    pub revealed_at: Option<i64>,
    pub ready_at: Option<i64>,
    pub state: String,
}

pub async fn find_reveal(
    pool: &SqlitePool,
    token_sha256: &str,
) -> Result<Option<RevealRow>, StoreError> {
    Ok(sqlx::query_as::<_, RevealRow>(
        "SELECT r.tenant, r.expires_at, r.used_at, t.revealed_at, t.ready_at, t.state
         FROM reveals r JOIN tenants t ON t.tenant = r.tenant WHERE r.token_sha256 = ?",
    )
    .bind(token_sha256)
    .fetch_optional(pool)
    .await?)
}

/// Spends a reveal link: succeeds for exactly one caller, and only while the
/// link is unexpired and the tenant's token was never revealed. Keeps the
/// hash of the bootstrap token and voids every other link of the tenant.
pub async fn consume_reveal(
    pool: &SqlitePool,
    token_sha256: &str,
    tenant: &str,
    bootstrap_token_sha256: &str,
) -> Result<bool, StoreError> {
    let now = now_ms();
    let mut tx = write_tx(pool).await?;
    let spent = sqlx::query(
        "UPDATE reveals SET used_at = ? WHERE token_sha256 = ? AND used_at IS NULL AND expires_at > ?",
    )
    .bind(now)
    .bind(token_sha256)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    let marked = sqlx::query(
        "UPDATE tenants SET revealed_at = ?, bootstrap_token_sha256 = ? WHERE tenant = ? AND revealed_at IS NULL",
    )
    .bind(now)
    .bind(bootstrap_token_sha256)
    .bind(tenant)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 || marked.rows_affected() != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    sqlx::query("UPDATE reveals SET used_at = ? WHERE tenant = ? AND used_at IS NULL")
        .bind(now)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    insert_event(&mut tx, tenant, "token revealed", now).await?;
    tx.commit().await?;
    Ok(true)
}

/// Counts for the fleet gauges.
#[derive(Debug, Default, Clone)]
pub struct FleetCounts {
    pub signups_by_status: Vec<(String, i64)>,
    pub tenants_by_phase: Vec<(String, i64)>,
}

pub async fn fleet_counts(pool: &SqlitePool) -> Result<FleetCounts, StoreError> {
    let signups = sqlx::query("SELECT status, count(*) AS n FROM signups GROUP BY status")
        .fetch_all(pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get::<String, _>("status")?, r.try_get::<i64, _>("n")?)))
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    // Tenants without a reported phase (manual, or not yet seen) count under their state.
    let tenants = sqlx::query(
        "SELECT CASE WHEN state IN ('manual', 'deleted') OR phase IS NULL THEN state ELSE phase END AS p,
                count(*) AS n FROM tenants GROUP BY p",
    )
    .fetch_all(pool)
    .await?
    .iter()
    .map(|r| Ok((r.try_get::<String, _>("p")?, r.try_get::<i64, _>("n")?)))
    .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok(FleetCounts {
        signups_by_status: signups,
        tenants_by_phase: tenants,
    })
}

/// Tenants whose phase the fleet follower should keep reading.
pub async fn followed_tenants(pool: &SqlitePool) -> Result<Vec<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT tenant FROM tenants WHERE state IN ('provisioning', 'ready', 'suspended')",
    )
    .fetch_all(pool)
    .await?)
}

/// Records that the tenant's `TaskHarbor` resource exists (created by the
/// approval, or by the repair after an interrupted one).
pub async fn mark_resource_created(pool: &SqlitePool, tenant: &str) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE tenants SET resource_created_at = ? WHERE tenant = ? AND resource_created_at IS NULL",
    )
    .bind(now_ms())
    .bind(tenant)
    .execute(pool)
    .await?;
    Ok(())
}

/// Approvals recorded at least `min_age` ago whose resource was never
/// confirmed created (the process stopped between the two steps), with
/// their signup ids.
pub async fn unprovisioned(
    pool: &SqlitePool,
    min_age: Duration,
) -> Result<Vec<(String, i64)>, StoreError> {
    let before = now_ms() - i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX / 2);
    Ok(sqlx::query_as(
        "SELECT tenant, signup_id FROM tenants \
         WHERE state = 'provisioning' AND resource_created_at IS NULL AND approved_at <= ? \
         ORDER BY approved_at",
    )
    .bind(before)
    .fetch_all(pool)
    .await?)
}
