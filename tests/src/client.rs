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

    /// A POST with a body built by the caller (e.g. [`multipart_body`]).
    pub async fn post_body(&self, path: &str, content_type: &str, body: Vec<u8>) -> Result<Res> {
        read(self.request(reqwest::Method::POST, path).header("Content-Type", content_type).body(body).send().await?)
            .await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Result<Res> {
        read(self.request(reqwest::Method::POST, path).json(body).send().await?).await
    }

    /// Any request with the given headers and body (e.g. a tus PATCH).
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Res> {
        let mut req = self.request(reqwest::Method::from_bytes(method.as_bytes())?, path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        read(req.body(body).send().await?).await
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

    /// A chunk PUT with a body built by the caller.
    pub async fn put_body(&self, path: &str, range: &str, content_type: &str, body: Vec<u8>) -> Result<Res> {
        let req = self
            .request(reqwest::Method::PUT, path)
            .header("Content-Range", range)
            .header("Content-Type", content_type)
            .body(body);
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

    /// The completing POST, repeated while it answers `202` (its wait ran out: on a
    /// loaded machine the first copy can take longer), as the contract tells clients to;
    /// at most 20 times. Returns the first other answer.
    pub async fn complete_patiently(&self, url: &str, md5: &str) -> Result<Res> {
        let mut res = self.complete(url, md5).await?;
        for _ in 0..20 {
            if res.status != 202 {
                break;
            }
            res = self.complete(url, md5).await?;
        }
        Ok(res)
    }

    /// Follows the download redirect by hand, without the JWT (the node or the staging
    /// link must not need it), and a staging link's own redirect to a node copy (at
    /// most 3 redirects in all, as a browser would follow them).
    pub async fn download(&self, file: &str, range: Option<&str>) -> Result<Res> {
        let mut res = self.get(&format!("/storage/download/{file}/")).await?;
        let anonymous = Client::anonymous(&self.base);
        for _ in 0..3 {
            if res.status != 302 {
                break;
            }
            let location = res.header("location").context("Location")?;
            res = match range {
                Some(r) => anonymous.get_with(&location, &[("Range", r)]).await?,
                None => anonymous.get(&location).await?,
            };
        }
        Ok(res)
    }

    /// Waits (bounded) until the download redirect goes to a node copy (not to the
    /// staging copy the API serves before the first node copy) and returns the
    /// Location.
    pub async fn wait_download(&self, file: &str) -> Result<String> {
        let path = format!("/storage/download/{file}/");
        let staging = format!("{}/staging/", self.base);
        crate::eventually(&format!("a download redirect to a node for {file}"), Duration::from_secs(60), || {
            let this = self.clone();
            let (path, staging) = (path.clone(), staging.clone());
            async move {
                let res = this.get(&path).await?;
                Ok((res.status == 302).then(|| res.header("location")).flatten().filter(|l| !l.starts_with(&staging)))
            }
        })
        .await
    }
}

/// What a PUT whose body was cut short got back (the server may answer before it
/// notices the half-closed connection, or just close it).
#[derive(Debug)]
pub struct CutShort {
    /// The response's status, if one came before the connection closed.
    pub status: Option<u16>,
    /// The raw response (status line, headers, body), for assertion messages.
    pub raw: String,
}

impl Client {
    /// A chunk PUT as a client whose connection dies mid-body: the request head announces
    /// `Content-Length: content_length`, only `sent` follows, then the write half is
    /// closed. Returns what the server said, if anything, within 30 s.
    ///
    /// Written on a raw socket because an HTTP client library will not send a body
    /// shorter than the length it declared.
    pub async fn put_cut_short(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        content_length: usize,
        sent: &[u8],
    ) -> Result<CutShort> {
        self.send_cut_short("PUT", path, headers, content_length, sent).await
    }

    /// [`Client::put_cut_short`] with another method (a tus PATCH).
    pub async fn send_cut_short(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: usize,
        sent: &[u8],
    ) -> Result<CutShort> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let url = reqwest::Url::parse(&self.url(path))?;
        let host = url.host_str().context("host")?.to_owned();
        let port = url.port_or_known_default().context("port")?;
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let mut head =
            format!("{method} {target} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Length: {content_length}\r\n");
        if let Some(token) = &self.token {
            head.push_str(&format!("Authorization: JWT {token}\r\n"));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");

        let mut socket = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        socket.write_all(head.as_bytes()).await?;
        socket.write_all(sent).await?;
        socket.flush().await?;
        // The client "dies": no more bytes will come.
        socket.shutdown().await?;
        let mut raw = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(30), socket.read_to_end(&mut raw)).await;
        anyhow::ensure!(read.is_ok(), "the server neither answered nor closed within 30 s of a cut-off body");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let status = raw.strip_prefix("HTTP/1.1 ").and_then(|rest| rest.get(..3)).and_then(|code| code.parse().ok());
        Ok(CutShort { status, raw })
    }
}

/// A `multipart/form-data` body with a `file` part (and the given text fields before
/// it), built by hand so a test can send only part of it. Returns (content type, body).
pub fn multipart_body(fields: &[(&str, &str)], file: &[u8]) -> (String, Vec<u8>) {
    let boundary = format!("ferry-test-{:016x}", rand::random::<u64>());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"blob\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
