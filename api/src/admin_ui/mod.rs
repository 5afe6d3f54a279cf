//! The admin web page at `/admin/`: server-rendered HTML for administrators, signed in
//! with a username and password into an HttpOnly, SameSite=Strict session cookie.
//! Every page re-checks `is_admin` in the database and every form carries a CSRF
//! token. It shows the nodes (refreshed live by a small inline script; each node's page
//! with its health history, free-space trend and removal), users (quota, disable),
//! uploads, files and job records filtered and paged (`listing.rs`; each id a link to
//! its detail page, a job's with its record and message), the RabbitMQ queues with their rates (reloading itself) and each
//! job kind paused or resumed (as `ferry queues pause|resume`), dead
//! letters (replay, discard) and the worker inventory; nothing is loaded from elsewhere.

mod cookies;
mod csrf;
mod error;
mod form;
mod html;
pub(crate) mod listing;
mod pages;
mod session;

use axum::response::Redirect;
use axum::routing::{get, post};
use axum::Router;

use crate::state::SharedState;
use pages::{detail, job_detail, jobs, login, nodes, queues, storage, users, workers};

pub fn router() -> Router<SharedState> {
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(nodes::page))
        .route("/admin/login", get(login::show).post(login::submit))
        .route("/admin/logout", post(login::logout))
        .route("/admin/nodes", get(|| async { Redirect::to("/admin/") }).post(nodes::add))
        .route("/admin/nodes.json", get(nodes::json))
        .route("/admin/nodes/{id}", get(nodes::edit_page).post(nodes::edit))
        .route("/admin/nodes/{id}/state", post(nodes::set_state))
        .route("/admin/nodes/{id}/remove", post(nodes::remove))
        .route("/admin/users", get(users::page).post(users::create))
        .route("/admin/users/{id}/password", post(users::reset_password))
        .route("/admin/users/{id}/quota", post(users::set_quota))
        .route("/admin/users/{id}/{action}", post(users::account_action))
        .route("/admin/uploads", get(storage::uploads))
        .route("/admin/uploads/{id}", get(detail::upload))
        .route("/admin/files", get(storage::files))
        .route("/admin/files/{id}", get(detail::file))
        .route("/admin/queues", get(queues::page))
        .route("/admin/queues/{kind}/{action}", post(queues::act))
        .route("/admin/jobs", get(jobs::page))
        .route("/admin/jobs/{id}", get(job_detail::page))
        .route("/admin/jobs/{id}/{action}", post(jobs::act))
        .route("/admin/workers", get(workers::page))
}
