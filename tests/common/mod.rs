//! What the integration tests share, in one place: `on_both!` (one test on SQLite and on
//! PostgreSQL), unique names, fresh folders, a test clock, serving a router, a test's store
//! (`db`), PostgreSQL schemas (`pg`), the one way to start a program (`process`), `messo run` in a
//! folder (`daemon`), the peers (`peers`; `dns`, an authoritative DNS server), reading e-mails
//! (`mail`), the admin console, portal and telephone harnesses (`admin`, `portal`, `phone`), the
//! stand-ins of the IO Services API (`io`) and of PDND and INAD (`inad`), and the browser
//! (`webdriver`).
//!
//! Every test file starts with `mod common;`; each uses a part of it.
#![allow(dead_code)]

pub mod admin;
pub mod daemon;
pub mod db;
pub mod dns;
pub mod inad;
pub mod io;
pub mod mail;
pub mod peers;
pub mod pg;
pub mod phone;
pub mod portal;
pub mod process;
pub mod webdriver;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU32, Ordering};

use messo::time::Timestamp;

pub use db::{Backend, TestDb};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `PREFIX_PID_N`: a name no other test of any run going on now has (N counts in this process).
/// It is a valid SQL identifier when `prefix` is one.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// A new, empty folder `CARGO_TARGET_TMPDIR/PREFIX_PID_N` (inside the build's own `target/`,
/// wherever the checkout is).
pub fn fresh_dir(prefix: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(unique(prefix));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// An RFC 3339 instant.
pub fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap_or_else(|e| panic!("timestamp {s}: {e}"))
}

/// Serves `app` on a free loopback port (with the peer's address, as the daemon does) until the
/// test's runtime ends; its base URL, `http://127.0.0.1:PORT`.
pub async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    format!("http://{addr}")
}

/// A clock the test sets.
#[derive(Clone)]
pub struct TestClock(Arc<AtomicI64>);

impl TestClock {
    pub fn at(t: &str) -> TestClock {
        TestClock(Arc::new(AtomicI64::new(ts(t).0)))
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(self.0.load(Ordering::SeqCst))
    }

    pub fn set(&self, t: &str) {
        self.0.store(ts(t).0, Ordering::SeqCst);
    }

    /// Moves the clock `seconds` on.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }

    /// The clock as the library takes it.
    pub fn clock(&self) -> messo::time::Clock {
        let now = Arc::clone(&self.0);
        Arc::new(move || Timestamp(now.load(Ordering::SeqCst)))
    }
}

/// A clock stopped at `t`.
pub fn fixed_clock(t: Timestamp) -> messo::time::Clock {
    Arc::new(move || t)
}

/// One test on both stores. `on_both!(start; a, b(x, y))` makes, for each test function `a`, a
/// module `a` with two tokio tests, `sqlite` and `postgres`. Each builds its world with
/// `start(Backend::Sqlite or Backend::Postgres, x, y)`, runs `a(&world).await`, then
/// `world.finish().await`: reached only when the test passed, so a failed test's PostgreSQL
/// schema and files stay for a look. `start` is a function of the test file (or imported there).
#[allow(unused_macros)] // a test crate that does not use it
macro_rules! on_both {
    (@test $backend:ident $variant:ident $start:ident $name:ident ($($arg:expr),*)) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $backend() {
            let world = super::$start($crate::common::Backend::$variant $(, $arg)*).await;
            super::$name(&world).await;
            world.finish().await;
        }
    };
    ($start:ident; $($name:ident $(($($arg:expr),* $(,)?))?),* $(,)?) => {$(
        mod $name {
            $crate::common::on_both!(@test sqlite Sqlite $start $name ($($($arg),*)?));
            $crate::common::on_both!(@test postgres Postgres $start $name ($($($arg),*)?));
        }
    )*};
}

#[allow(unused_imports)]
pub(crate) use on_both;
