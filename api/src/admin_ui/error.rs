//! The admin page's errors, answered as HTML pages (the JSON API keeps
//! [`ApiError`]). Statuses are decided in [`UiError::status`]; database trouble keeps
//! the status `ApiError` gives it, and 5xx pages never show internal text.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};

use super::html::{Page, Section};
use crate::error::ApiError;
use ferry_store::nodes::NodeError;
use ferry_store::users::UserError;

#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("sign-in required")]
    LoginRequired,
    #[error("{username} is not an administrator")]
    NotAdmin { username: String },
    #[error("CSRF check failed")]
    Csrf,
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl UiError {
    fn status(&self) -> StatusCode {
        match self {
            UiError::LoginRequired => StatusCode::SEE_OTHER,
            UiError::NotAdmin { .. } | UiError::Csrf => StatusCode::FORBIDDEN,
            UiError::Invalid(_) => StatusCode::BAD_REQUEST,
            UiError::Conflict(_) => StatusCode::CONFLICT,
            UiError::NotFound(_) => StatusCode::NOT_FOUND,
            // Not used: `ApiError` answers for itself (see `into_response`).
            UiError::Api(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<deadpool_postgres::PoolError> for UiError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        UiError::Api(e.into())
    }
}

impl From<ferry_store::StoreError> for UiError {
    fn from(e: ferry_store::StoreError) -> Self {
        UiError::Api(e.into())
    }
}

impl From<NodeError> for UiError {
    fn from(e: NodeError) -> Self {
        match e {
            NodeError::Invalid(detail) => UiError::Invalid(detail),
            NodeError::Exists => UiError::Conflict("A node with that name already exists.".into()),
            NodeError::NotFound => UiError::NotFound("Node"),
            NodeError::Active | NodeError::HoldsReplicas(_) => {
                UiError::Conflict(format!("The node was not removed: {e}."))
            }
            NodeError::Store(e) => UiError::Api(e.into()),
        }
    }
}

impl From<UserError> for UiError {
    fn from(e: UserError) -> Self {
        match e {
            UserError::BadUsername | UserError::ShortPassword => UiError::Invalid(format!("The {e}.")),
            UserError::Taken(_) | UserError::HasData(_) | UserError::LastAdmin(_) => {
                UiError::Conflict(format!("The {e}."))
            }
            UserError::Hash(cause) => UiError::Api(ApiError::Internal(cause)),
            UserError::Store(e) => UiError::Api(e.into()),
        }
    }
}

fn error_page(title: &str, message: &str, status: StatusCode) -> Response {
    let body = format!(
        "<p class=\"notice error\" role=\"alert\">{}</p><p><a href=\"/admin/\">Back to the admin page</a></p>",
        super::html::Esc(message)
    );
    Page { title, section: Section::None, session: None, body, script: None }.render(status)
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let status = self.status();
        match self {
            UiError::LoginRequired => Redirect::to("/admin/login").into_response(),
            UiError::NotAdmin { username } => {
                let mut response = error_page(
                    "Not an administrator",
                    &format!("{username} is not an administrator: the admin page is for administrators only."),
                    status,
                );
                // Nothing useful can be done with this session here.
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, HeaderValue::from_static(super::cookies::CLEAR_SESSION_COOKIE));
                response
            }
            UiError::Csrf => error_page(
                "Forbidden",
                "The form's CSRF token is missing or wrong. Reload the page and submit the form again.",
                status,
            ),
            UiError::Invalid(detail) => error_page("Invalid input", &detail, status),
            UiError::Conflict(detail) => error_page("Conflict", &detail, status),
            UiError::NotFound(what) => error_page("Not found", &format!("{what} not found."), status),
            UiError::Api(e) => {
                // `ApiError` decides the status and logs the cause. A client error's
                // own words are for the client (a body that arrived too slowly, text
                // PostgreSQL cannot store); a server error's cause stays in the log.
                let detail = e.to_string();
                let api = e.into_response();
                let status = api.status();
                let message = if status == StatusCode::SERVICE_UNAVAILABLE {
                    "The database is unavailable; try again shortly.".to_owned()
                } else if status.is_client_error() {
                    detail
                } else {
                    "Internal server error.".to_owned()
                };
                let mut response = error_page("Error", &message, status);
                for name in [header::RETRY_AFTER, header::CONNECTION] {
                    if let Some(value) = api.headers().get(&name) {
                        response.headers_mut().insert(name, value.clone());
                    }
                }
                response
            }
        }
    }
}
