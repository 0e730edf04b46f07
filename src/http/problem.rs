//! RFC 7807 problem details.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::store::{AdminError, InboundError, StoreError, TemplateStoreError, TicketError};
use crate::ticket::FieldError;

/// An error answer: status, a stable kind, a sentence for people, and the fields at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub status: StatusCode,
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// A problem with no field list.
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
        }
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    }

    /// 422 with the fields at fault.
    pub fn invalid(errors: Vec<FieldError>) -> Problem {
        let detail = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        Problem {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            kind: "validation",
            title: "The request has invalid fields",
            detail,
            errors,
        }
    }

    /// The body as JSON text.
    pub fn body(&self) -> String {
        let body = ProblemBody {
            kind: format!("urn:messo:problem:{}", self.kind),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            errors: &self.errors,
        };
        // A struct of strings, numbers and string pairs always serializes.
        serde_json::to_string(&body).unwrap_or_default()
    }
}

/// RFC 7807 problem details (`application/problem+json`).
#[derive(Serialize, ToSchema)]
#[schema(as = Problem)]
pub struct ProblemBody<'a> {
    /// `urn:messo:problem:<kind>`, e.g. `validation`, `not-found`, `unauthorized`, `forbidden`,
    /// `conflict`, `malformed-json`, `media-type`, `body`, `idempotency-key-reused`,
    /// `bad-request`, `rate-limited`, `internal`; the webhooks use `malformed-webhook`,
    /// `unauthenticated`, `forbidden`, `not-found`, `too-large`, `rate-limited`, `unavailable`.
    #[serde(rename = "type")]
    #[schema(
        pattern = "^urn:messo:problem:",
        examples("urn:messo:problem:validation")
    )]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    /// The fields at fault; empty when the problem is not about fields.
    #[schema(value_type = Vec<super::schema::FieldError>)]
    errors: &'a [FieldError],
}

// The one `type` of a refused template.
#[derive(Serialize, ToSchema)]
enum TemplateProblemType {
    #[serde(rename = "urn:messo:problem:template")]
    Template,
}

/// A refused template: nothing was stored and the live version stays.
#[derive(Serialize, ToSchema)]
#[schema(as = TemplateProblem)]
pub struct TemplateProblemBody<'a> {
    #[serde(rename = "type")]
    #[schema(inline)]
    kind: TemplateProblemType,
    title: &'static str,
    #[schema(minimum = 422, maximum = 422)]
    status: u16,
    /// Every problem on one line, separated by `; `.
    detail: String,
    #[schema(value_type = Vec<super::schema::TemplateError>)]
    errors: &'a [crate::templates::Problem],
}

/// 422 listing each template problem (part, line, column, sample, message).
pub fn template_refused(problems: &[crate::templates::Problem]) -> Response {
    let body = TemplateProblemBody {
        kind: TemplateProblemType::Template,
        title: "Il modello non è valido: la versione in uso resta invariata",
        status: StatusCode::UNPROCESSABLE_ENTITY.as_u16(),
        detail: problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; "),
        errors: problems,
    };
    let mut res = (
        StatusCode::UNPROCESSABLE_ENTITY,
        serde_json::to_string(&body).unwrap_or_default(),
    )
        .into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    res
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut res = (self.status, self.body()).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        res
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Problem {
        match e {
            StoreError::Ticket(TicketError::Invalid(errors)) => Problem::invalid(errors),
            StoreError::Ticket(TicketError::NotFound(n)) => {
                Problem::not_found(format!("ticket {n} not found"))
            }
            StoreError::Ticket(TicketError::Conflict(m))
            | StoreError::Admin(AdminError::Conflict(m))
            | StoreError::Template(TemplateStoreError::Conflict(m))
            | StoreError::Inbound(InboundError::Conflict(m)) => Problem::new(
                StatusCode::CONFLICT,
                "conflict",
                "The ticket's state does not allow this",
                m,
            ),
            StoreError::Ticket(TicketError::KeyReused(k)) => Problem {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                kind: "idempotency-key-reused",
                title: "Idempotency key reused with different content",
                detail: format!("the key {k:?} was already used for a different event"),
                errors: vec![FieldError {
                    field: "Idempotency-Key".into(),
                    message: "already used for a different request".into(),
                }],
            },
            StoreError::Ticket(TicketError::OutOfRange(e)) => Problem::invalid(vec![FieldError {
                field: "received_at".into(),
                message: e.to_string(),
            }]),
            other => {
                tracing::error!(error = %other, "request failed");
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "the request could not be completed; nothing was changed, try again",
                )
            }
        }
    }
}

crate::store::from_store_errors!(Problem);
