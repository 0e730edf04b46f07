//! The ticket page: header, SLA with its day-by-day account, events, messages with their stored words and every attempt and receipt, replies and attachments, links, audit.

use utoipa_axum::router::OpenApiRouter;

use super::DeskState;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new()
}
