//! The admin web page as the `it` tests read it: HTML pages fetched with an
//! administrator's token as the session cookie, forms posted with the page's CSRF token
//! (redirects not followed, so a test sees the 303 or the refusal), and the `data-*`
//! attributes the pages mark their rows with.

use anyhow::{ensure, Result};
use ferry_tests::client::Client;
use ferry_tests::Cluster;

/// An administrator's session on a cluster's admin page.
pub struct AdminPage {
    http: reqwest::Client,
    base: String,
    cookie: String,
}

impl AdminPage {
    /// Signed in as `admin` (a client that logged in as an administrator).
    pub fn new(cluster: &Cluster, admin: &Client) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?,
            base: cluster.api.clone(),
            cookie: format!("ferry_admin={}", admin.token.clone().unwrap_or_default()),
        })
    }

    /// The HTML of `path` (e.g. `/admin/jobs?state=dead`), which must answer 200.
    pub async fn get(&self, path: &str) -> Result<String> {
        let res = self.http.get(format!("{}{path}", self.base)).header("Cookie", &self.cookie).send().await?;
        ensure!(res.status() == 200, "GET {path}: {}", res.status());
        Ok(res.text().await?)
    }

    /// The status `path` answers with.
    pub async fn status(&self, path: &str) -> Result<u16> {
        let res = self.http.get(format!("{}{path}", self.base)).header("Cookie", &self.cookie).send().await?;
        Ok(res.status().as_u16())
    }

    /// Posts a form of the page with `csrf` as its only field; the answer's status.
    pub async fn post(&self, path: &str, csrf: &str) -> Result<u16> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .header("Cookie", &self.cookie)
            .form(&[("csrf", csrf)])
            .send()
            .await?;
        Ok(res.status().as_u16())
    }
}

/// The CSRF token a page's forms carry (its `ferry-csrf` meta tag).
pub fn csrf(html: &str) -> String {
    let token = html.split("name=\"ferry-csrf\" content=\"").nth(1).and_then(|rest| rest.split('"').next());
    token.unwrap_or_default().to_owned()
}

/// The values of the attribute `name` in `html`, in document order.
pub fn attrs(html: &str, name: &str) -> Vec<String> {
    html.split(&format!(" {name}=\"")).skip(1).filter_map(|rest| rest.split('"').next()).map(str::to_owned).collect()
}
