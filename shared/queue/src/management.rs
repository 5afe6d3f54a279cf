//! Queue statistics from the RabbitMQ management HTTP API
//! (`GET {management_url}/api/queues/{vhost}`), with the user, password and vhost
//! taken from the broker's AMQP URL. The admin Queues page and `ferry queues ls` read
//! their message rates here. The broker computes these figures every
//! [`STATS_INTERVAL_SECS`], so a read can be up to that much older than the broker.

use std::sync::OnceLock;
use std::time::Duration;

use ferry_shared::config::BrokerConfig;
use serde::Deserialize;

/// How often RabbitMQ samples the counts and rates the management API serves: its
/// `collect_statistics_interval` (default 5000 ms; Ferry's deployments keep it).
pub const STATS_INTERVAL_SECS: u32 = 5;

/// A body bigger than this is not a queue list we want to hold in memory.
const MAX_BODY_BYTES: usize = 8 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpCredentials {
    pub user: String,
    pub password: String,
    pub vhost: String,
}

#[derive(Debug, Deserialize)]
pub struct QueueStats {
    pub name: String,
    #[serde(default)]
    pub messages_ready: Option<i64>,
    #[serde(default)]
    pub messages_unacknowledged: Option<i64>,
    #[serde(default)]
    pub consumers: Option<i64>,
    /// Message rates over the broker's last statistics sample (absent on an idle queue).
    #[serde(default)]
    pub message_stats: Option<MessageStats>,
}

/// Per-second rates of a queue (RabbitMQ's `*_details.rate`).
#[derive(Debug, Default, Deserialize)]
pub struct MessageStats {
    /// Messages published into the queue.
    #[serde(default)]
    pub publish_details: Option<Rate>,
    /// Messages delivered to consumers (and fetched).
    #[serde(default)]
    pub deliver_get_details: Option<Rate>,
    /// Messages acknowledged by consumers.
    #[serde(default)]
    pub ack_details: Option<Rate>,
}

#[derive(Debug, Default, Deserialize)]
pub struct Rate {
    /// Per second.
    #[serde(default)]
    pub rate: f64,
}

impl QueueStats {
    /// (published, delivered, acknowledged) per second.
    pub fn rates(&self) -> (f64, f64, f64) {
        let rate = |r: &Option<Rate>| r.as_ref().map_or(0.0, |r| r.rate);
        self.message_stats
            .as_ref()
            .map_or((0.0, 0.0, 0.0), |m| (rate(&m.publish_details), rate(&m.deliver_get_details), rate(&m.ack_details)))
    }
}

/// A rate for people, as the admin page and `ferry queues ls` show it: `0`, `2.5`
/// (one decimal below 10 per second), `12`.
pub fn fmt_rate(per_second: f64) -> String {
    if per_second == 0.0 {
        "0".into()
    } else if per_second < 10.0 {
        format!("{per_second:.1}")
    } else {
        format!("{per_second:.0}")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    #[error("the broker URL is not an amqp:// URL")]
    BadUrl,
    #[error("{0}")]
    Http(String),
}

/// Splits `amqp://user:password@host:port/vhost` (RabbitMQ's URI spec: percent-encoded
/// parts, `guest`/`guest` and vhost `/` when absent).
pub fn parse_amqp_url(url: &str) -> Option<AmqpCredentials> {
    let rest = url.strip_prefix("amqp://").or_else(|| url.strip_prefix("amqps://"))?;
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, password) = match authority.rsplit_once('@') {
        Some((userinfo, _)) => match userinfo.split_once(':') {
            Some((u, p)) => (percent_decode(u)?, percent_decode(p)?),
            None => (percent_decode(userinfo)?, String::new()),
        },
        None => ("guest".to_owned(), "guest".to_owned()),
    };
    let vhost = percent_decode(path)?;
    let vhost = if vhost.is_empty() { "/".to_owned() } else { vhost };
    Some(AmqpCredentials { user, password, vhost })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Percent-encodes one path segment (everything but RFC 3986 unreserved characters).
pub fn encode_segment(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The management UI's address for a link: http(s) only, without any
/// `user:password@` in it.
pub fn ui_url(management_url: &str) -> Option<String> {
    let url = management_url.trim_end_matches('/');
    let (scheme, rest) = url.split_once("://")?;
    if !["http", "https"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return None;
    }
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    Some(format!("{scheme}://{host}{path}/"))
}

fn client() -> Result<&'static reqwest::Client, RabbitError> {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    if let Some(client) = CLIENT.get() {
        return Ok(client);
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(4))
        .no_proxy()
        .build()
        .map_err(|e| RabbitError::Http(e.to_string()))?;
    Ok(CLIENT.get_or_init(|| client))
}

/// The error with its causes ("error sending request: ... Connection refused"), without
/// the URL: the page shows that already.
fn http_error(e: reqwest::Error) -> RabbitError {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    RabbitError::Http(text)
}

/// Every queue of the broker URL's vhost, sorted by name.
pub async fn queues(broker: &BrokerConfig) -> Result<Vec<QueueStats>, RabbitError> {
    let creds = parse_amqp_url(broker.url.expose()).ok_or(RabbitError::BadUrl)?;
    let url = format!(
        "{}/api/queues/{}?columns=name,messages_ready,messages_unacknowledged,consumers,\
         message_stats.publish_details.rate,message_stats.deliver_get_details.rate,message_stats.ack_details.rate",
        broker.management_url.trim_end_matches('/'),
        encode_segment(&creds.vhost)
    );
    let mut response =
        client()?.get(&url).basic_auth(&creds.user, Some(&creds.password)).send().await.map_err(http_error)?;
    if !response.status().is_success() {
        return Err(RabbitError::Http(format!("HTTP {}", response.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(http_error)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(RabbitError::Http("the queue list is too large".into()));
        }
        body.extend_from_slice(&chunk);
    }
    let mut queues: Vec<QueueStats> =
        serde_json::from_slice(&body).map_err(|_| RabbitError::Http("unexpected answer (not a queue list)".into()))?;
    queues.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(queues)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(user: &str, password: &str, vhost: &str) -> Option<AmqpCredentials> {
        Some(AmqpCredentials { user: user.into(), password: password.into(), vhost: vhost.into() })
    }

    #[test]
    fn parses_amqp_urls() {
        assert_eq!(parse_amqp_url("amqp://ferry:s3cr%40t@127.0.0.1:5673/%2f"), creds("ferry", "s3cr@t", "/"));
        assert_eq!(parse_amqp_url("amqp://u:p@h/ferry%2Ftest?heartbeat=10"), creds("u", "p", "ferry/test"));
        assert_eq!(parse_amqp_url("amqp://u:p@h:5672/"), creds("u", "p", "/"));
        assert_eq!(parse_amqp_url("amqps://h"), creds("guest", "guest", "/"));
        assert_eq!(parse_amqp_url("amqp://a%3Ab:c:d@h/v"), creds("a:b", "c:d", "v"));
        assert_eq!(parse_amqp_url("http://u:p@h/"), None);
        assert_eq!(parse_amqp_url("amqp://u:p%zz@h/"), None);
        assert_eq!(parse_amqp_url("amqp://u:p%2@h/"), None);
    }

    #[test]
    fn links_to_the_ui_without_credentials() {
        assert_eq!(ui_url("http://127.0.0.1:15673").as_deref(), Some("http://127.0.0.1:15673/"));
        assert_eq!(
            ui_url("https://admin:pw@mq.example:15671/rabbit/").as_deref(),
            Some("https://mq.example:15671/rabbit/")
        );
        assert_eq!(ui_url("javascript:alert(1)//x"), None);
    }

    #[test]
    fn formats_rates() {
        assert_eq!(
            (fmt_rate(0.0), fmt_rate(0.04), fmt_rate(2.5), fmt_rate(12.4)),
            ("0".into(), "0.0".into(), "2.5".into(), "12".into())
        );
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode_segment("/"), "%2F");
        assert_eq!(encode_segment("ferry-test_1.x~"), "ferry-test_1.x~");
        assert_eq!(encode_segment("a b/ü"), "a%20b%2F%C3%BC");
    }
}
