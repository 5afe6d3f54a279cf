//! The users page: the list with each user's files, creating a user and resetting a
//! password, through `ferry_store::users` (the same rules as `ferry-api user-add`).

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_shared::types::{ByteSize, UserId};
use ferry_store::search::{Paging, Search};
use ferry_store::users;

use crate::admin_ui::error::UiError;
use crate::admin_ui::form::{self, text};
use crate::admin_ui::html::{csrf_field, fmt_bytes, fmt_time, notice, Esc, Page, Section};
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

/// `GET /admin/users`
pub async fn page(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let all = Paging { limit: i64::MAX, offset: 0 };
    let (_, users) = users::search(&state.pool.get().await?, &Search::default(), None, all).await?;
    let mut body = match query.as_deref() {
        Some("done=created") => notice("ok", "The user was created."),
        Some("done=password") => notice("ok", "The password was reset; the user's tokens and sessions ended."),
        Some("done=disabled") => notice("ok", "The user was disabled; their tokens and sessions ended."),
        Some("done=enabled") => notice("ok", "The user was enabled."),
        Some("done=deleted") => notice("ok", "The user was deleted."),
        _ => String::new(),
    };
    body.push_str(
        "<table class=\"grid\" id=\"users\"><thead><tr><th class=\"num\">Id</th><th>User</th><th>Admin</th>\
         <th class=\"num\">Files</th><th class=\"num\">Stored</th><th class=\"num\">Quota</th><th>Created</th>\
         <th>Reset password</th><th>Account</th></tr></thead><tbody>",
    );
    let default_quota = fmt_bytes(ByteSize(state.config.storage.default_quota_bytes));
    for user in &users {
        let id = user.id;
        let quota = user.quota.map(fmt_bytes).unwrap_or_else(|| format!("{default_quota} (default)"));
        let _ = write!(
            body,
            "<tr data-user=\"{name}\"><td class=\"num\">{id}</td><td>{name}</td><td>{admin}</td>\
             <td class=\"num\">{files}</td><td class=\"num\">{stored}</td><td class=\"num\">{quota}</td>\
             <td>{created}</td><td><form method=\"post\" action=\"/admin/users/{id}/password\" class=\"inline\">{csrf}\
             <input type=\"password\" name=\"password\" autocomplete=\"new-password\" required \
             aria-label=\"New password for {name}\" placeholder=\"new password\">\
             <button type=\"submit\">Reset</button></form></td><td>{state} \
             <form method=\"post\" action=\"/admin/users/{id}/{toggle}\" class=\"inline\">{csrf}\
             <button type=\"submit\">{toggle_label}</button></form> \
             <form method=\"post\" action=\"/admin/users/{id}/delete\" class=\"inline\">{csrf}\
             <button type=\"submit\">Delete</button></form></td></tr>",
            name = Esc(&user.username),
            admin = if user.is_admin { "yes" } else { "no" },
            files = user.files,
            stored = fmt_bytes(user.stored),
            quota = Esc(&quota),
            created = fmt_time(user.created_at),
            csrf = csrf_field(&session.csrf),
            state = if user.disabled { "disabled" } else { "active" },
            toggle = if user.disabled { "enable" } else { "disable" },
            toggle_label = if user.disabled { "Enable" } else { "Disable" },
        );
    }
    let _ = write!(
        body,
        "</tbody></table><section class=\"card\"><h2>Create a user</h2>\
         <form method=\"post\" action=\"/admin/users\" class=\"fields\">{}\
         <label>Username <input name=\"username\" required autocomplete=\"off\"></label>\
         <label>Password <input name=\"password\" type=\"password\" required autocomplete=\"new-password\"></label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"is_admin\" value=\"1\"> Administrator</label>\
         <button type=\"submit\">Create user</button></form></section>",
        csrf_field(&session.csrf)
    );
    Ok(Page { title: "Users", section: Section::Users, session: Some(&session), body, script: None }
        .render(StatusCode::OK))
}

/// `POST /admin/users`: creates a user; an existing name is a conflict, never an
/// overwrite of that user's password.
pub async fn create(State(state): State<SharedState>, session: AdminSession, body: Body) -> Result<Response, UiError> {
    let f = form::read_checked(&state, &session, body).await?;
    let username = text(&f, "username").ok_or_else(|| UiError::Invalid("A username is required.".into()))?;
    let password = f.get("password").cloned().unwrap_or_default();
    let admin = f.get("is_admin").is_some_and(|v| !v.is_empty());
    let client = state.pool.get().await?;
    if users::exists(&client, &username).await? {
        return Err(UiError::Conflict(format!("A user named {username} already exists.")));
    }
    let id = users::upsert(&client, &username, &password, admin).await?;
    tracing::info!(user.id = %id, user.admin = admin, admin = %session.username, "user created from the admin page");
    Ok(Redirect::to("/admin/users?done=created").into_response())
}

/// `POST /admin/users/{id}/password`
pub async fn reset_password(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, UiError> {
    let id = UserId(id.parse().map_err(|_| UiError::NotFound("User"))?);
    let f = form::read_checked(&state, &session, body).await?;
    let password = f.get("password").cloned().unwrap_or_default();
    let client = state.pool.get().await?;
    let username = users::account(&client, id).await?.ok_or(UiError::NotFound("User"))?.username;
    if !users::set_password(&client, &username, &password).await? {
        return Err(UiError::NotFound("User"));
    }
    tracing::info!(user.id = %id, admin = %session.username, "password reset from the admin page");
    Ok(Redirect::to("/admin/users?done=password").into_response())
}

/// `POST /admin/users/{id}/disable`, `.../enable`, `.../delete`: disabling ends the
/// user's tokens and sessions at once (their files stay); deleting is refused while
/// the user owns files or uploads.
pub async fn account_action(
    State(state): State<SharedState>,
    session: AdminSession,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> Result<Response, UiError> {
    let id = UserId(id.parse().map_err(|_| UiError::NotFound("User"))?);
    form::read_checked(&state, &session, body).await?;
    let client = state.pool.get().await?;
    let username = users::account(&client, id).await?.ok_or(UiError::NotFound("User"))?.username;
    let found = match action.as_str() {
        "disable" => users::set_disabled(&client, &username, true).await?,
        "enable" => users::set_disabled(&client, &username, false).await?,
        "delete" => users::delete(&client, &username).await?,
        _ => return Err(UiError::NotFound("Action")),
    };
    if !found {
        return Err(UiError::NotFound("User"));
    }
    tracing::info!(user.id = %id, action = %action, admin = ?session.username, "user account changed from the admin page");
    let done = match action.as_str() {
        "disable" => "disabled",
        "enable" => "enabled",
        _ => "deleted",
    };
    Ok(Redirect::to(&format!("/admin/users?done={done}")).into_response())
}
