//! The URP's working console, behind the admin session: find a ticket (`search`), read all of it
//! (`ticket`: its SLA account, events, every message's stored words and fate, replies,
//! attachments, links, audit), clear the work queues that need a person (`queues`) and act on a
//! ticket as the office (`actions`). Every route is role-checked by [`AdminState`]; every change
//! is CSRF-protected, audited in its own transaction and idempotent.

mod actions;
mod queues;
mod search;
mod ticket;

use std::sync::Arc;

use utoipa_axum::router::OpenApiRouter;

use super::admin::AdminState;
use crate::config::Config;

/// What the console's desk routes share: the admin state (who is asking, the store, the clock)
/// and the configuration (the fallback chain, the office's addresses, the ticket format, the
/// attachments folder).
#[derive(Clone)]
pub struct DeskState {
    admin: AdminState,
    config: Arc<Config>,
}

impl DeskState {
    pub fn new(admin: AdminState, config: Arc<Config>) -> DeskState {
        DeskState { admin, config }
    }
}

/// The desk routes with their documentation (merged into the whole API by [`super::app`]).
pub fn routes(state: DeskState) -> OpenApiRouter {
    OpenApiRouter::new()
        .merge(search::routes())
        .merge(ticket::routes())
        .merge(queues::routes())
        .merge(actions::routes())
        .layer(axum::middleware::from_fn(super::admin::no_store))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        // Who the client is (behind a trusted proxy, the one `X-Forwarded-For` names), for the
        // limiter of failed bearer tokens, as on the admin routes.
        .layer(axum::middleware::from_fn_with_state(
            state.admin.clone(),
            super::admin::with_peer,
        ))
        .with_state(state)
}

/// The desk routes (without the OpenAPI document).
pub fn router(state: DeskState) -> axum::Router {
    routes(state).split_for_parts().0
}
