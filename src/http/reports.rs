//! `/api/v1/reports/…`: the compliance report (JSON, CSV, Excel CSV, open-data CSV) and the
//! criticalities list. Open to an API token with the `reports` scope (a BI tool, the
//! transparency export) and to console users of any role (session or admin token).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::admin::AdminState;
use super::openapi::{Forbidden, Internal, Invalid, Unauthorized};
use super::{Peer, Problem, TokenBook};
use crate::config::{Config, Scope};
use crate::monitoring::render::{self, CsvStyle};
use crate::monitoring::{self, MonitoringError, ReportRequest};
use crate::reports::{GroupBy, Measure, Period};
use crate::store::{Role, Store};
use crate::ticket::FieldError;
use crate::time::Clock;

/// What the report routes need.
#[derive(Clone)]
pub struct ReportsState {
    store: Store,
    config: Arc<Config>,
    tokens: Arc<TokenBook>,
    admin: AdminState,
    clock: Clock,
}

impl ReportsState {
    pub fn new(
        store: Store,
        config: Arc<Config>,
        tokens: Arc<TokenBook>,
        admin: AdminState,
        clock: Clock,
    ) -> ReportsState {
        ReportsState {
            store,
            config,
            tokens,
            admin,
            clock,
        }
    }

    /// The console desk's state: the same admin state and configuration.
    pub fn desk(&self) -> super::desk::DeskState {
        super::desk::DeskState::new(self.admin.clone(), Arc::clone(&self.config))
    }

    /// A configured API token with the `reports` scope, or a console user of any role.
    /// Returns whether the caller is the office's staff (a console user), who may read the
    /// citizens' comments.
    async fn authorize(
        &self,
        headers: &HeaderMap,
        method: &Method,
        peer: std::net::IpAddr,
    ) -> Result<bool, Problem> {
        let config_token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| super::split_token(t.trim()))
            .is_some_and(|(id, _)| self.tokens.knows(id));
        if config_token {
            self.tokens
                .authorize(headers, peer, Scope::Reports)
                .await
                .map(|_| false)
        } else {
            self.admin
                .require(headers, method, Role::Viewer)
                .await
                .map(|()| true)
        }
    }
}

/// The report routes with their documentation.
pub fn routes(state: ReportsState) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(compliance))
        .routes(routes!(criticalities))
        .with_state(state)
}

impl From<MonitoringError> for Problem {
    fn from(e: MonitoringError) -> Problem {
        if e.is_client_error() {
            let field = match e {
                MonitoringError::TooMuchWork { .. } => "group_by",
                _ => "from",
            };
            Problem::invalid(vec![FieldError {
                field: field.into(),
                message: e.to_string(),
            }])
        } else {
            tracing::error!(error = %e, "report failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "the report could not be made; try again",
            )
        }
    }
}

/// The query of the compliance report; read by hand to refuse unknown parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // described, never built
struct ComplianceParams {
    /// First local day (`2026-11-01`); with `to`, instead of `month`.
    #[param(format = Date)]
    from: Option<String>,
    /// Last local day, included.
    #[param(format = Date)]
    to: Option<String>,
    /// A calendar month (`2026-11`), instead of `from` and `to`.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    month: Option<String>,
    /// Any of `month|week`, `priority`, `category`, `office`, `channel`, comma-separated.
    group_by: Option<String>,
    /// One office only.
    office: Option<String>,
    /// Measures whose ticket numbers each row lists, comma-separated (`closed_late,open_breached`),
    /// or `all`.
    tickets: Option<String>,
    /// `json` (default), `csv`, `excel` (UTF-8 with BOM, `;`, dates gg/mm/aaaa, decimal comma)
    /// or `open_data` (aggregates only). `Accept: text/csv` also asks for `csv`.
    #[param(inline)]
    format: Option<ReportFormat>,
}

#[derive(ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)] // described, never built
enum ReportFormat {
    Json,
    Csv,
    Excel,
    OpenData,
}

/// Dates and months of the query, parsed.
fn date(field: &str, v: &str, errors: &mut Vec<FieldError>) -> Option<NaiveDate> {
    match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        Ok(d) => Some(d),
        Err(_) => {
            errors.push(FieldError {
                field: field.into(),
                message: format!("expected a date YYYY-MM-DD, found {v:?}"),
            });
            None
        }
    }
}

/// The request and format of a compliance query, or every problem with it.
fn read_query(
    params: &HashMap<String, String>,
    headers: &HeaderMap,
) -> Result<(ReportRequest, &'static str), Problem> {
    let mut errors = Vec::new();
    let mut from = None;
    let mut to = None;
    let mut month = None;
    let mut group = GroupBy::default();
    let mut office = None;
    let mut tickets = Vec::new();
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    let mut format = if wants_csv { "csv" } else { "json" };
    for (k, v) in params {
        match k.as_str() {
            "from" => from = date("from", v, &mut errors),
            "to" => to = date("to", v, &mut errors),
            "month" => match monitoring::month_period(v) {
                Some(p) => month = Some(p),
                None => errors.push(FieldError {
                    field: "month".into(),
                    message: format!("expected a month YYYY-MM, found {v:?}"),
                }),
            },
            "group_by" => match GroupBy::parse(v) {
                Ok(g) => group = g,
                Err(e) => errors.push(FieldError {
                    field: "group_by".into(),
                    message: e.to_string(),
                }),
            },
            "office" if !v.is_empty() && v.chars().count() <= 100 => office = Some(v.clone()),
            "office" => errors.push(FieldError {
                field: "office".into(),
                message: "must be 1 to 100 characters".into(),
            }),
            "tickets" if v == "all" => tickets = Measure::ALL.to_vec(),
            "tickets" => {
                for m in v.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                    match m.parse::<Measure>() {
                        Ok(m) => tickets.push(m),
                        Err(e) => errors.push(FieldError {
                            field: "tickets".into(),
                            message: e.to_string(),
                        }),
                    }
                }
            }
            "format" => match v.as_str() {
                "json" => format = "json",
                "csv" => format = "csv",
                "excel" => format = "excel",
                "open_data" => format = "open_data",
                other => errors.push(FieldError {
                    field: "format".into(),
                    message: format!("unknown format {other:?}; expected json|csv|excel|open_data"),
                }),
            },
            other => errors.push(FieldError {
                field: other.to_owned(),
                message:
                    "unknown parameter; expected from, to, month, group_by, office, tickets, format"
                        .into(),
            }),
        }
    }
    let period = match (month, from, to) {
        (Some(p), None, None) => Some(p),
        (None, Some(f), Some(t)) => match Period::new(f, t) {
            Ok(p) => Some(p),
            Err(e) => {
                errors.push(FieldError {
                    field: "to".into(),
                    message: e.to_string(),
                });
                None
            }
        },
        _ if !errors.is_empty() => None,
        _ => {
            errors.push(FieldError {
                field: "month".into(),
                message: "give either month, or from and to".into(),
            });
            None
        }
    };
    match period {
        Some(period) if errors.is_empty() => Ok((
            ReportRequest {
                period,
                group,
                office,
                tickets,
                comments: false,
            },
            format,
        )),
        _ => Err(Problem::invalid(errors)),
    }
}

fn file_response(content_type: &'static str, name: String, body: Vec<u8>) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// Compliance report
///
/// The measures of `docs/reports.md` for a period, grouped by month or week, priority,
/// category, office and channel of receipt, computed from the events (not the SLA cache): a
/// ticket counts as it stood at the end of each time bucket. `tickets` lists the ticket
/// numbers behind the counted cells. Notices and contacts are per time bucket.
#[utoipa::path(
    get,
    path = "/api/v1/reports/compliance",
    operation_id = "complianceReport",
    tag = "reports",
    security(("apiToken" = ["reports"]), ("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    params(ComplianceParams),
    responses(
        (status = 200, description = "The report.", body = super::schema::Compliance,
            content(
                (super::schema::Compliance = "application/json"),
                (String = "text/csv"),
            )),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, response = Invalid),
        (status = 500, response = Internal),
    ),
)]
async fn compliance(
    State(st): State<ReportsState>,
    Query(params): Query<HashMap<String, String>>,
    Peer(peer): Peer,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let staff = st.authorize(&headers, &method, peer).await?;
    let (mut req, format) = read_query(&params, &headers)?;
    req.comments = staff && format == "json";
    let now = (st.clock)();
    let report = monitoring::compliance(&st.store, &st.config, &req, now).await?;
    let stem = format!("conformita-{}-{}", req.period.from, req.period.to);
    Ok(match format {
        "csv" => file_response(
            "text/csv; charset=utf-8",
            format!("{stem}.csv"),
            render::csv(&report, CsvStyle::Plain),
        ),
        "excel" => file_response(
            "text/csv; charset=utf-8",
            format!("{stem}-excel.csv"),
            render::csv(&report, CsvStyle::Excel),
        ),
        "open_data" => file_response(
            "text/csv; charset=utf-8",
            format!("{stem}-dati-aperti.csv"),
            render::open_data_csv(&report),
        ),
        _ => (StatusCode::OK, axum::Json(report)).into_response(),
    })
}

/// The criticalities list.
#[derive(Serialize, ToSchema)]
struct CriticalityList {
    /// When the list was made.
    #[schema(format = DateTime)]
    generated_at: String,
    #[schema(value_type = Vec<super::schema::Criticality>)]
    items: Vec<monitoring::Criticality>,
}

/// Criticalities
///
/// What needs a person now ("criticità rilevate"), each with its reason in Italian: tickets
/// breached and open, in warning, waiting for an integrazione past the cap; citizen messages
/// held as uncertain and citizens unreachable on every channel (last 30 days); replies matched
/// to no ticket for more than a day; offices whose share closed on time this month (to
/// yesterday) is below `reports.on_time_threshold_pct`. At most 500 of each kind.
#[utoipa::path(
    get,
    path = "/api/v1/reports/criticalities",
    operation_id = "criticalities",
    tag = "reports",
    security(("apiToken" = ["reports"]), ("adminSession" = ["viewer"]), ("adminToken" = ["viewer"])),
    responses(
        (status = 200, description = "The list, most urgent kinds first.", body = CriticalityList),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 500, response = Internal),
    ),
)]
async fn criticalities(
    State(st): State<ReportsState>,
    Peer(peer): Peer,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    st.authorize(&headers, &method, peer).await?;
    let now = (st.clock)();
    let items = monitoring::criticalities(&st.store, &st.config, now).await?;
    let generated_at = chrono::DateTime::from_timestamp(now.0, 0)
        .map(|d| d.with_timezone(&st.admin.tz()).to_rfc3339())
        .unwrap_or_default();
    Ok((
        StatusCode::OK,
        axum::Json(CriticalityList {
            generated_at,
            items,
        }),
    )
        .into_response())
}
