//! The digital domicile cache (`digital_domiciles`): what INAD answered for each codice fiscale
//! of an open ticket, so that the engine routes legal notices without asking INAD on its own
//! path, and INAD is asked again only once the answer is `cache_days` old.

use sqlx::Row;

use super::Domiciles;
use crate::time::Timestamp;

/// Why a domicile cache read or write failed.
#[derive(Debug, thiserror::Error)]
pub enum DomicileError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedDomicile {
    /// The domicile found; none when the index has none for the code.
    pub pec: Option<String>,
    /// Who answered (`inad`).
    pub source: String,
    pub checked_at: Timestamp,
    pub valid_until: Timestamp,
}

impl Domiciles<'_> {
    /// Up to `limit` distinct codici fiscali of open tickets whose cached answer is missing or
    /// no longer valid at `now`; the codes never asked come first, then the oldest answers.
    pub async fn fiscal_codes_to_check(
        &self,
        now: Timestamp,
        limit: i64,
    ) -> Result<Vec<String>, DomicileError> {
        Ok(sqlx::query_scalar(
            "SELECT t.fiscal_code FROM tickets t \
             LEFT JOIN digital_domiciles d ON d.fiscal_code = t.fiscal_code \
             WHERE t.closed_at IS NULL AND t.fiscal_code IS NOT NULL \
               AND (d.fiscal_code IS NULL OR d.valid_until <= $1) \
             GROUP BY t.fiscal_code \
             ORDER BY MIN(COALESCE(d.checked_at, 0)), MIN(t.id) \
             LIMIT $2",
        )
        .bind(now.0)
        .bind(limit)
        .fetch_all(&self.store.pool)
        .await?)
    }

    /// Records an answer for `fiscal_code` (replacing the one before): `pec` none means the
    /// index has no domicile for it.
    pub async fn record(
        &self,
        fiscal_code: &str,
        pec: Option<&str>,
        source: &str,
        checked_at: Timestamp,
        valid_until: Timestamp,
    ) -> Result<(), DomicileError> {
        sqlx::query(
            "INSERT INTO digital_domiciles (fiscal_code, pec, source, checked_at, valid_until) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (fiscal_code) DO UPDATE SET pec = excluded.pec, \
               source = excluded.source, checked_at = excluded.checked_at, \
               valid_until = excluded.valid_until",
        )
        .bind(fiscal_code)
        .bind(pec)
        .bind(source)
        .bind(checked_at.0)
        .bind(valid_until.0)
        .execute(&self.store.pool)
        .await?;
        Ok(())
    }

    /// The cached answer for `fiscal_code` still valid at `now`, if any.
    pub async fn lookup(
        &self,
        fiscal_code: &str,
        now: Timestamp,
    ) -> Result<Option<CachedDomicile>, DomicileError> {
        let row = sqlx::query(
            "SELECT pec, source, checked_at, valid_until FROM digital_domiciles \
             WHERE fiscal_code = $1 AND valid_until > $2",
        )
        .bind(fiscal_code)
        .bind(now.0)
        .fetch_optional(&self.store.pool)
        .await?;
        row.map(|r| {
            Ok(CachedDomicile {
                pec: r.try_get(0)?,
                source: r.try_get(1)?,
                checked_at: Timestamp(r.try_get(2)?),
                valid_until: Timestamp(r.try_get(3)?),
            })
        })
        .transpose()
    }

    /// The cached answer for `fiscal_code`, valid or not (tests and the console).
    pub async fn any(&self, fiscal_code: &str) -> Result<Option<CachedDomicile>, DomicileError> {
        self.lookup(fiscal_code, Timestamp(i64::MIN)).await
    }
}
