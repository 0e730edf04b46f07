//! Stored calendar and policy versions, and the clocks built from them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::{AnyPool, Row};

use crate::calendar::{Calendar, CalendarSpec};
use crate::sla::{Policy, Sla};
use crate::time::Timestamp;
use crate::versions::{CalendarDoc, PolicyDoc};

/// Why the calendar and policy versions could not be registered or read.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error(transparent)]
    Version(#[from] crate::versions::VersionError),
    #[error("calendar: {0}")]
    Calendar(#[from] crate::calendar::CalendarError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

/// Every stored version, the current pair, and the SLA clocks built so far (a calendar takes a
/// few milliseconds to lay out, so each pair is built once).
#[derive(Debug, Default)]
pub struct VersionRegistry {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    calendars: HashMap<i64, CalendarSpec>,
    policies: HashMap<i64, Policy>,
    current: Option<(i64, i64)>,
    built: HashMap<(i64, i64), Arc<Sla>>,
}

/// Inserts the calendar and policy documents unless present; returns (calendar, policy) ids.
pub(super) async fn register(
    pool: &AnyPool,
    calendar: &CalendarSpec,
    policy: &Policy,
    now: Timestamp,
) -> Result<(i64, i64), RegistryError> {
    let (ctext, chash) = CalendarDoc::of(calendar).canonical();
    let (ptext, phash) = PolicyDoc::of(policy).canonical();
    let mut ids = [0i64; 2];
    for (i, (table, text, hash)) in [
        ("calendar_versions", ctext, chash),
        ("policy_versions", ptext, phash),
    ]
    .into_iter()
    .enumerate()
    {
        let insert = format!(
            "INSERT INTO {table} (hash, spec, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (hash) DO NOTHING"
        );
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(&hash)
            .bind(&text)
            .bind(now.0)
            .execute(pool)
            .await?;
        let select = format!("SELECT id FROM {table} WHERE hash = $1");
        ids[i] = sqlx::query_scalar(sqlx::AssertSqlSafe(select))
            .bind(&hash)
            .fetch_one(pool)
            .await?;
    }
    Ok((ids[0], ids[1]))
}

impl VersionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Loads every stored version.
    pub async fn load_all(&self, pool: &AnyPool) -> Result<(), RegistryError> {
        let cals = sqlx::query("SELECT id, spec FROM calendar_versions")
            .fetch_all(pool)
            .await?;
        let pols = sqlx::query("SELECT id, spec FROM policy_versions")
            .fetch_all(pool)
            .await?;
        let mut calendars = HashMap::new();
        for r in cals {
            let spec: String = r.try_get(1)?;
            calendars.insert(r.try_get::<i64, _>(0)?, CalendarDoc::parse(&spec)?);
        }
        let mut policies = HashMap::new();
        for r in pols {
            let spec: String = r.try_get(1)?;
            policies.insert(r.try_get::<i64, _>(0)?, PolicyDoc::parse(&spec)?);
        }
        let mut inner = self.lock();
        inner.calendars = calendars;
        inner.policies = policies;
        Ok(())
    }

    /// Makes (calendar, policy) the versions new tickets open under.
    pub fn set_current(&self, ids: (i64, i64)) {
        self.lock().current = Some(ids);
    }

    /// The (calendar, policy) versions new tickets open under.
    pub fn current(&self) -> Result<(i64, i64), RegistryError> {
        self.lock().current.ok_or_else(|| {
            RegistryError::Corrupt("no configuration registered with the store".into())
        })
    }

    /// The target in seconds under a policy version.
    pub fn target_seconds(
        &self,
        policy: i64,
        category: crate::domain::Category,
        priority: crate::domain::Priority,
    ) -> Result<i64, RegistryError> {
        self.lock()
            .policies
            .get(&policy)
            .map(|p| p.target(category, priority).seconds)
            .ok_or_else(|| RegistryError::Corrupt(format!("unknown policy version {policy}")))
    }

    /// The SLA clock of a (calendar, policy) pair, built on first use.
    pub fn sla(&self, calendar: i64, policy: i64) -> Result<Arc<Sla>, RegistryError> {
        let (spec, pol) = {
            let inner = self.lock();
            if let Some(s) = inner.built.get(&(calendar, policy)) {
                return Ok(Arc::clone(s));
            }
            let spec = inner.calendars.get(&calendar).cloned().ok_or_else(|| {
                RegistryError::Corrupt(format!("unknown calendar version {calendar}"))
            })?;
            let pol = inner.policies.get(&policy).cloned().ok_or_else(|| {
                RegistryError::Corrupt(format!("unknown policy version {policy}"))
            })?;
            (spec, pol)
        };
        let sla = Arc::new(Sla::new(Calendar::new(spec)?, pol));
        self.lock()
            .built
            .insert((calendar, policy), Arc::clone(&sla));
        Ok(sla)
    }
}
