//! Search: tickets by number (any spelling the matcher accepts), codice fiscale, e-mail, mobile, office, state and period, a page at a time.

use utoipa_axum::router::OpenApiRouter;

use super::DeskState;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new()
}
