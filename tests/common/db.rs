//! A test's own store: a SQLite file in a fresh folder, or a fresh schema of the machine's real
//! PostgreSQL (see `pg`).

use std::ops::Deref;
use std::path::PathBuf;

use messo::config::Config;
use messo::store::Store;

use super::{fresh_dir, pg, ts, unique};

/// Which store a test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, as the migrations' folders are named.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A store of its own for one test, with a fresh folder for the test's files (the SQLite file
/// lives there too). `finish` drops the schema and removes the folder.
pub struct TestDb {
    pub backend: Backend,
    pub store: Store,
    /// What a second connection pool (or the `messo` binary) connects to.
    pub url: String,
    pub dir: PathBuf,
    schema: Option<String>,
}

impl TestDb {
    /// Connected, with no table yet.
    pub async fn connect(backend: Backend) -> TestDb {
        let crate_name = env!("CARGO_CRATE_NAME");
        let dir = fresh_dir(crate_name);
        let (url, schema) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/messo.db", dir.display()), None),
            Backend::Postgres => {
                let schema = unique(&format!("messo_{crate_name}"));
                (pg::fresh_schema(&schema).await, Some(schema))
            }
        };
        let store = Store::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect to the test store {url}: {e}"));
        TestDb {
            backend,
            store,
            url,
            dir,
            schema,
        }
    }

    /// Connected and migrated.
    pub async fn open(backend: Backend) -> TestDb {
        let db = TestDb::connect(backend).await;
        db.store.migrate().await.expect("migrate");
        db
    }

    /// Migrated, with `config` registered (at the start of 2026, before every test's clock).
    pub async fn with_config(backend: Backend, config: &Config) -> TestDb {
        let db = TestDb::open(backend).await;
        db.register(config).await;
        db
    }

    /// Registers `config`'s policy and calendar versions, at the start of 2026.
    pub async fn register(&self, config: &Config) {
        self.store
            .register_config(config, ts("2026-01-01T00:00:00Z"))
            .await
            .expect("register the configuration");
    }

    /// A second connection pool to the same store, as another daemon would have.
    pub async fn second_pool(&self) -> Store {
        Store::connect(&self.url).await.expect("a second pool")
    }

    /// Tidies up after a test that passed.
    pub async fn finish(self) {
        if let Some(schema) = &self.schema {
            pg::drop_schema(schema).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The number `sql` (a `SELECT COUNT(*) …` or another single integer) gives.
pub async fn count(store: &Store, sql: &str) -> i64 {
    use sqlx::Row;
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(store.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get::<i64, _>(0)
}

impl Deref for TestDb {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}
