//! The machine's real PostgreSQL for the tests: a fresh schema per test in database `test`
//! (override the server with MESSO_TEST_PG_URL), dropped by the tests that pass.

use messo::store::Store;

/// The server and database the tests use.
pub fn base() -> String {
    std::env::var("MESSO_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates schema `schema` and returns the URL of connections that work in it.
pub async fn fresh_schema(schema: &str) -> String {
    let admin = Store::connect(&base()).await.expect(
        "PostgreSQL must run on 127.0.0.1:5432 (start it with pg_ctlcluster; .ci/run does)",
    );
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(admin.pool())
        .await
        .expect("create schema");
    let base = base();
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}options=-c%20search_path%3D{schema}")
}

/// Drops a test schema and everything in it (errors are ignored: it is only tidying).
pub async fn drop_schema(schema: &str) {
    if let Ok(admin) = Store::connect(&base()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(admin.pool())
            .await;
    }
}
