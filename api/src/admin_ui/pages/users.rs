//! The users page: the list (filtered by name, state and creation day, paged) with each
//! user's files, creating a user, resetting a password, editing the quota, disabling,
//! enabling and deleting, through `ferry_store::users` (the same rules as the `ferry`
//! CLI and `ferry-api user-add`).

use std::fmt::Write as _;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use ferry_shared::types::{ByteSize, UserId};
use ferry_store::users;

use crate::admin_ui::error::UiError;
use crate::admin_ui::form::{self, text};
use crate::admin_ui::html::{csrf_field, fmt_bytes, fmt_time, notice, Esc, Page, Section};
use crate::admin_ui::listing::Listing;
use crate::admin_ui::session::AdminSession;
use crate::state::SharedState;

/// `GET /admin/users`
pub async fn page(
    State(state): State<SharedState>,
    session: AdminSession,
    RawQuery(query): RawQuery,
) -> Result<Response, UiError> {
    let (done, query) = match query.as_deref().and_then(|q| q.strip_prefix("done=")) {
        Some(done) => (Some(done.to_owned()), None),
        None => (None, query),
    };
    let l = Listing::parse(query.as_deref()).map_err(UiError::Invalid)?;
    let disabled = match l.state.as_deref() {
        None => None,
        Some("active") => Some(false),
        Some("disabled") => Some(true),
        Some(s) => return Err(UiError::Invalid(format!("Unknown user state {s:?} (active or disabled)."))),
    };
    let (total, users) = users::search(&state.pool.get().await?, &l.search, disabled, l.paging()).await?;
    let mut body = match done.as_deref() {
        Some("created") => notice("ok", "The user was created."),
        Some("password") => notice("ok", "The password was reset; the user's tokens and sessions ended."),
        Some("disabled") => notice("ok", "The user was disabled; their tokens and sessions ended."),
        Some("enabled") => notice("ok", "The user was enabled."),
        Some("deleted") => notice("ok", "The user was deleted."),
        Some("quota") => notice("ok", "The quota was changed; it bounds new uploads, stored files stay."),
        _ => String::new(),
    };
    body.push_str(&l.filter_form("/admin/users", "Name contains", &["active", "disabled"], ""));
    body.push_str(
        "<table class=\"grid\" id=\"users\"><thead><tr><th class=\"num\">Id</th><th>User</th><th>Admin</th>\
         <th class=\"num\">Files</th><th class=\"num\">Stored</th><th>Quota</th><th>Created</th>\
         <th>Reset password</th><th>Account</th></tr></thead><tbody>",
    );
    let default_quota = fmt_bytes(ByteSize(state.config.storage.default_quota_bytes));
    for user in &users {
        let id = user.id;
        let quota = user.quota.map(fmt_bytes).unwrap_or_else(|| format!("{default_quota} (default)"));
        let _ = write!(
            body,
            "<tr data-user=\"{name}\" data-state=\"{state}\"><td class=\"num\">{id}</td>\
             <td><a href=\"/admin/uploads?user={name}\">{name}</a></td><td>{admin}</td>\
             <td class=\"num\"><a href=\"/admin/files?user={name}&amp;state=live\">{files}</a></td>\
             <td class=\"num\">{stored}</td><td class=\"c-quota\"><span class=\"quota\">{quota}</span>\
             <form method=\"post\" action=\"/admin/users/{id}/quota\" class=\"inline quota-form\">{csrf}\
             <input name=\"quota\" size=\"8\" aria-label=\"New quota for {name}\" placeholder=\"10GiB\">\
             <button type=\"submit\">Set</button></form></td>\
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
    if users.is_empty() {
        body.push_str("<tr class=\"empty\"><td colspan=\"9\">No users match.</td></tr>");
    }
    body.push_str("</tbody></table>");
    body.push_str(&l.pager("/admin/users", total, users.len()));
    let _ = write!(
        body,
        "<p class=\"sub\">A quota is a size (10GiB, 500MB, 1048576) or <code>default</code> \
         ({default_quota}); it bounds new uploads, stored files stay.</p>\
         <section class=\"card\"><h2>Create a user</h2>\
         <form method=\"post\" action=\"/admin/users\" class=\"fields\">{}\
         <label>Username <input name=\"username\" required autocomplete=\"off\"></label>\
         <label>Password <input name=\"password\" type=\"password\" required autocomplete=\"new-password\"></label>\
         <label class=\"check\"><input type=\"checkbox\" name=\"is_admin\" value=\"1\"> Administrator</label>\
         <button type=\"submit\">Create user</button></form></section>",
        csrf_field(&session.csrf),
        default_quota = Esc(&default_quota),
    );
    Ok(Page::admin("Users", Section::Users, session.signed_in(), body).render(StatusCode::OK))
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

/// What a form posted to `/admin/users/{id}/...` acts on: the user's id, the checked
/// form, a connection and the username (404 for an unknown id).
async fn target_user(
    state: &SharedState,
    session: &AdminSession,
    id: &str,
    body: Body,
) -> Result<(UserId, form::Form, ferry_store::Client, String), UiError> {
    let id = UserId(id.parse().map_err(|_| UiError::NotFound("User"))?);
    let f = form::read_checked(state, session, body).await?;
    let client = state.pool.get().await?;
    let username = users::account(&client, id).await?.ok_or(UiError::NotFound("User"))?.username;
    Ok((id, f, client, username))
}

/// `POST /admin/users/{id}/password`
pub async fn reset_password(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, UiError> {
    let (id, f, client, username) = target_user(&state, &session, &id, body).await?;
    let password = f.get("password").cloned().unwrap_or_default();
    if !users::set_password(&client, &username, &password).await? {
        return Err(UiError::NotFound("User"));
    }
    tracing::info!(user.id = %id, admin = %session.username, "password reset from the admin page");
    Ok(Redirect::to("/admin/users?done=password").into_response())
}

/// `POST /admin/users/{id}/quota` with `quota`: a size (`ByteSize::parse_human`) or
/// `default` (blank too) for the configured default.
pub async fn set_quota(
    State(state): State<SharedState>,
    session: AdminSession,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, UiError> {
    let (id, f, client, username) = target_user(&state, &session, &id, body).await?;
    let raw = text(&f, "quota").unwrap_or_default();
    let quota = if raw.is_empty() || raw.eq_ignore_ascii_case("default") {
        None
    } else {
        Some(ByteSize::parse_human(&raw).map_err(|e| UiError::Invalid(format!("The quota: {e}.")))?)
    };
    if !users::set_quota(&client, &username, quota).await? {
        return Err(UiError::NotFound("User"));
    }
    tracing::info!(user.id = %id, quota_bytes = ?quota.map(ByteSize::bytes), admin = %session.username, "quota changed from the admin page");
    Ok(Redirect::to("/admin/users?done=quota").into_response())
}

/// `POST /admin/users/{id}/disable`, `.../enable`, `.../delete`: disabling ends the
/// user's tokens and sessions at once (their files stay); deleting is refused while
/// the user owns live files, open uploads or node copies of deleted files
/// ([`users::delete`]).
pub async fn account_action(
    State(state): State<SharedState>,
    session: AdminSession,
    Path((id, action)): Path<(String, String)>,
    body: Body,
) -> Result<Response, UiError> {
    let (id, _, client, username) = target_user(&state, &session, &id, body).await?;
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
