//! The work queues: held (uncertain) messages, citizens unreachable on every channel, unmatched replies, SMS opt-outs; their counts and actions.

use utoipa_axum::router::OpenApiRouter;

use super::DeskState;

pub(super) fn routes() -> OpenApiRouter<DeskState> {
    OpenApiRouter::new()
}
