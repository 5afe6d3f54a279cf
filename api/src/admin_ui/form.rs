//! Reading the admin forms: urlencoded bodies with a small cap, and the CSRF check
//! every POST goes through before anything else is looked at.

use std::collections::HashMap;

use axum::body::Body;

use super::error::UiError;
use super::session::AdminSession;
use crate::state::AppState;
use crate::upload::pace::{read_whole, BodyPace};

const MAX_FORM_BYTES: usize = 16 * 1024;

pub type Form = HashMap<String, String>;

/// Parses an `application/x-www-form-urlencoded` body of at most 16 KiB, arriving at
/// no less than the API's body pace floor.
///
/// # Errors
/// Those of [`read_whole`] (as `UiError::Api`); `UiError::Invalid` for a malformed form.
pub async fn read(state: &AppState, body: Body) -> Result<Form, UiError> {
    parse(&read_whole(body, MAX_FORM_BYTES, BodyPace::of(&state.config.api)).await?)
}

fn parse(bytes: &[u8]) -> Result<Form, UiError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(bytes)
        .map(|pairs| pairs.into_iter().collect())
        .map_err(|_| UiError::Invalid("The form body is malformed.".into()))
}

/// Reads a form posted by `session`'s page: a missing or wrong CSRF token is a 403.
pub async fn read_checked(state: &AppState, session: &AdminSession, body: Body) -> Result<Form, UiError> {
    let form = read(state, body).await?;
    if !session.csrf_ok(state, form.get("csrf").map(String::as_str)) {
        tracing::warn!(user.id = %session.user_id, "admin form rejected: CSRF token missing or wrong");
        return Err(UiError::Csrf);
    }
    Ok(form)
}

/// A trimmed field, `None` when absent or blank.
pub fn text(form: &Form, name: &str) -> Option<String> {
    form.get(name).map(|v| v.trim()).filter(|v| !v.is_empty()).map(str::to_owned)
}

/// A number field, `None` when absent or blank.
pub fn number<T: std::str::FromStr>(form: &Form, name: &str) -> Result<Option<T>, UiError> {
    text(form, name).map(|v| v.parse().map_err(|_| UiError::Invalid(format!("{name} must be a number.")))).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields_and_numbers() {
        let form = parse(b"name=n%201&ssh_port=+2201+&lat=&csrf=ab&x=%3Cb%3E").expect("form");
        assert_eq!(text(&form, "name").as_deref(), Some("n 1"));
        assert_eq!(text(&form, "x").as_deref(), Some("<b>"));
        assert_eq!(text(&form, "lat"), None);
        assert_eq!(text(&form, "missing"), None);
        assert_eq!(number::<i32>(&form, "ssh_port").expect("number"), Some(2201));
        assert_eq!(number::<f64>(&form, "lat").expect("blank"), None);
        assert!(matches!(number::<i32>(&form, "name"), Err(UiError::Invalid(_))));
    }
}
