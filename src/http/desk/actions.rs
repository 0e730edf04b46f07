//! Staff actions a CRM would otherwise send: a step with text for the citizen, an integration request, a closure; through the same event path as the API.

use utoipa_axum::router::OpenApiRouter;

use super::DeskState;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new()
}
