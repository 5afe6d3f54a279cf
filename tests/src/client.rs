//! A small HTTP client for Ferry's API as the original's clients use it.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::header::HeaderMap;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

/// A response with its body read.
#[derive(Debug)]
pub struct Res {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
    }
    /// The error `code` of a JSON error body.
    pub fn code(&self) -> String {
        self.json()["code"].as_str().unwrap_or_default().to_owned()
    }
}

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub token: Option<String>,
    http: reqwest::Client,
}

async fn read(res: reqwest::Response) -> Result<Res> {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res.bytes().await?.to_vec();
    Ok(Res { status, headers, body })
}

impl Client {
    pub fn anonymous(base: &str) -> Client {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_default();
        Client { base: base.to_owned(), token: None, http }
    }

    pub async fn login(base: &str, user: &str, password: &str) -> Result<Client> {
        let mut client = Client::anonymous(base);
        let res = client.post_form("/api-token-auth/", &[("username", user), ("password", password)]).await?;
        anyhow::ensure!(res.status == 200, "login {user}: {} {}", res.status, res.text());
        client.token = Some(res.json()["token"].as_str().context("token")?.to_owned());
        Ok(client)
    }

    pub fn with_token(&self, token: &str) -> Client {
        Client { token: Some(token.to_owned()), ..self.clone() }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let req = self.http.request(method, self.url(path));
        match &self.token {
            Some(token) => req.header("Authorization", format!("JWT {token}")),
            None => req,
        }
    }

    pub async fn get(&self, path: &str) -> Result<Res> {
        read(self.request(reqwest::Method::GET, path).send().await?).await
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Result<Res> {
        let mut req = self.request(reqwest::Method::GET, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.send().await?).await
    }

    pub async fn head(&self, path: &str) -> Result<Res> {
        read(self.request(reqwest::Method::HEAD, path).send().await?).await
    }

    pub async fn delete(&self, path: &str) -> Result<Res> {
        read(self.request(reqwest::Method::DELETE, path).send().await?).await
    }

    pub async fn post_form(&self, path: &str, form: &[(&str, &str)]) -> Result<Res> {
        read(self.request(reqwest::Method::POST, path).form(form).send().await?).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Res> {
        read(self.request(reqwest::Method::POST, path).json(body).send().await?).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Result<Res> {
        read(self.request(reqwest::Method::PATCH, path).json(body).send().await?).await
    }

    /// A chunk as the original's clients send it: multipart `file` (+ `filename`,
    /// `parent` when given) with `Content-Range` (omitted when `range` is None).
    pub async fn put_multipart(
        &self,
        path: &str,
        range: Option<&str>,
        bytes: &[u8],
        filename: Option<&str>,
        parent: Option<&str>,
    ) -> Result<Res> {
        let mut form = Form::new().part("file", Part::bytes(bytes.to_vec()).file_name("blob"));
        if let Some(name) = filename {
            form = form.text("filename", name.to_owned());
        }
        if let Some(parent) = parent {
            form = form.text("parent", parent.to_owned());
        }
        let mut req = self.request(reqwest::Method::PUT, path).multipart(form);
        if let Some(range) = range {
            req = req.header("Content-Range", range);
        }
        read(req.send().await?).await
    }

    /// A raw-body chunk (the fast path).
    pub async fn put_raw(&self, path: &str, range: &str, bytes: Vec<u8>) -> Result<Res> {
        let req = self
            .request(reqwest::Method::PUT, path)
            .header("Content-Range", range)
            .header("Content-Type", "application/octet-stream")
            .body(bytes);
        read(req.send().await?).await
    }

    /// Uploads `bytes` in `chunk`-sized multipart chunks (0-based ranges) and completes
    /// with the right md5. Returns the completing POST's response.
    pub async fn upload(&self, name: &str, bytes: &[u8], chunk: usize, parent: Option<&str>) -> Result<Res> {
        let total = bytes.len();
        let mut url = "/storage/tmp-upload/".to_owned();
        let mut start = 0;
        while start < total {
            let end = (start + chunk).min(total);
            let range = format!("bytes {}-{}/{total}", start, end - 1);
            let first = start == 0;
            let res = self
                .put_multipart(
                    &url,
                    Some(&range),
                    &bytes[start..end],
                    first.then_some(name),
                    if first { parent } else { None },
                )
                .await?;
            anyhow::ensure!(res.status == 200, "chunk at {start}: {} {}", res.status, res.text());
            url = res.json()["url"].as_str().context("url")?.to_owned();
            start = end;
        }
        self.complete(&url, &crate::md5_hex(bytes)).await
    }

    /// The completing POST with `md5` as a form field.
    pub async fn complete(&self, url: &str, md5: &str) -> Result<Res> {
        self.post_form(url, &[("md5", md5)]).await
    }

    /// Follows the download redirect by hand (the node must not need the JWT).
    pub async fn download(&self, file: &str, range: Option<&str>) -> Result<Res> {
        let res = self.get(&format!("/storage/download/{file}/")).await?;
        if res.status != 302 {
            return Ok(res);
        }
        let location = res.header("location").context("Location")?;
        let node = Client::anonymous(&self.base);
        match range {
            Some(r) => node.get_with(&location, &[("Range", r)]).await,
            None => node.get(&location).await,
        }
    }

    /// Waits (bounded) until a download redirect is possible and returns the Location.
    pub async fn wait_download(&self, file: &str) -> Result<String> {
        let path = format!("/storage/download/{file}/");
        crate::eventually(&format!("a download redirect for {file}"), Duration::from_secs(60), || {
            let this = self.clone();
            let path = path.clone();
            async move {
                let res = this.get(&path).await?;
                Ok((res.status == 302).then(|| res.header("location")).flatten())
            }
        })
        .await
    }
}
