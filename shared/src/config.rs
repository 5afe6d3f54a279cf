//! One typed configuration for every Ferry process.
//!
//! Read once at start-up from an optional TOML file, then `FERRY_*` environment
//! variables (`FERRY_<SECTION>__<KEY>`, e.g. `FERRY_DATABASE__URL`). Secrets may also
//! come from a file named by `<KEY>_FILE` (e.g. `FERRY_AUTH__JWT_SECRET_FILE`), so they
//! never have to sit in the environment or in the TOML itself. Each process reads only
//! the sections it needs; defaults suit `deploy/dev up`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// Secret value: never printed by `Debug` or `Serialize`.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `production` refuses development defaults for secrets.
    pub mode: Mode,
    pub database: DatabaseConfig,
    pub broker: BrokerConfig,
    pub auth: AuthConfig,
    pub signing: SigningConfig,
    pub storage: StorageConfig,
    pub api: ApiConfig,
    pub worker: WorkerConfig,
    pub monitor: MonitorConfig,
    pub node: NodeConfig,
    /// Limits of every HTTP listener (API, node agent, and the worker's and monitor's
    /// operations listeners).
    pub http: HttpConfig,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Development,
    Production,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// libpq-style URL, e.g. `postgres://ferry@127.0.0.1:5432/ferry`.
    pub url: Secret,
    pub url_file: Option<PathBuf>,
    pub pool_size: usize,
    /// How long a request waits for a pooled connection before answering 503.
    pub acquire_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// AMQP URL including the vhost, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: Secret,
    pub url_file: Option<PathBuf>,
    /// RabbitMQ management UI base URL, shown to operators.
    pub management_url: String,
    /// Heartbeat interval negotiated with the broker.
    pub heartbeat_secs: u16,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    pub jwt_secret: Secret,
    pub jwt_secret_file: Option<PathBuf>,
    pub token_ttl_secs: u64,
    /// Login attempts (token and admin page) one client address may make a minute,
    /// also the burst; more get 429 with `Retry-After` (docs/SECURITY.md).
    pub login_attempts_per_minute_per_address: u32,
    /// Login attempts one username may receive a minute, from all addresses together;
    /// larger than the per-address figure so that one address alone can never shut a
    /// user out.
    pub login_attempts_per_minute_per_user: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SigningConfig {
    /// Shared by the API (signs download URLs) and every node agent (verifies them).
    pub secret: Secret,
    pub secret_file: Option<PathBuf>,
    /// Lifetime of a signed download URL.
    pub url_ttl_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Staging volume shared by the API (writes chunks) and assemble workers.
    pub staging_dir: PathBuf,
    /// Number of distinct nodes that must hold a verified copy of each file.
    pub replication_factor: u32,
    /// Write quorum: verified node copies a file needs before the completing POST
    /// answers `200`. 0 to `replication_factor`; the rest are copied after the answer.
    /// Either way the file is downloadable when the client is told it is complete
    /// (read-after-write): with 0 (the default) the API serves the verified, fsynced
    /// staging copy through the same signed, Range-capable redirect until the first
    /// node copy is present; with 1 or more the answer also waits for that many copies
    /// on nodes (durability on nodes before the answer, at the cost of the copy's time).
    pub write_quorum: u32,
    /// Uploads not completed within this many seconds expire.
    pub upload_expiry_secs: u64,
    /// Uploads one user may have open (`uploading`: begun, not yet complete) at once;
    /// the next one is refused with 429 `too_many_open_uploads` until one completes,
    /// is terminated or expires. Each open upload is a row and a staging directory,
    /// which the quota alone does not bound (a 1-byte upload uses 1 byte of it).
    pub max_open_uploads_per_user: u64,
    pub max_chunk_bytes: u64,
    pub max_file_bytes: u64,
    /// Per-user quota used when a user has none of their own.
    pub default_quota_bytes: u64,
    /// Free space a node must keep beyond a file to be chosen as a target.
    pub node_reserve_bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// Base URL clients reach this API at; used in `url` and `download_url` fields.
    /// Empty: derived from the request's Host header.
    pub public_url: String,
    /// Default for how long the completing POST waits for the workers' verdict.
    pub complete_wait_secs: u64,
    /// Uploads receiving chunks at once per API process; more get 503.
    pub max_concurrent_uploads: usize,
    /// Of those, how many one user may hold at once; more get 429 `too_many_uploads`,
    /// so one account cannot take every slot (docs/SECURITY.md).
    pub max_concurrent_uploads_per_user: usize,
    /// A request body (a chunk, or a small body read whole: login, completing POST,
    /// admin forms and JSON) must be complete within this many seconds plus one second per
    /// `body_min_rate_bytes_per_sec` bytes received (Apache `mod_reqtimeout`'s
    /// `body=20,MinRate=500`); a slower body is cut off with 408 `body_too_slow`.
    pub body_read_timeout_secs: u64,
    /// The floor under a chunk body's average rate, after `body_read_timeout_secs`.
    pub body_min_rate_bytes_per_sec: u64,
    /// A node whose last heartbeat is older than this is not redirected to.
    pub heartbeat_stale_secs: u64,
    /// `CIDR = "lat,lon"` table locating clients for nearest-node choice.
    pub client_locations: Vec<ClientLocation>,
    pub page_size: u32,
    /// How long a file's replica locations are cached for download redirects
    /// (0 disables the cache).
    pub replica_cache_ms: u64,
    /// Redoc's standalone bundle (from the `redoc` npm package), served at
    /// `/docs/redoc.standalone.js` so the docs render with no network.
    pub redoc_bundle: PathBuf,
    /// Swagger UI's dist directory (the `swagger-ui-dist` npm package), whose bundle and
    /// stylesheet are served under `/docs/swagger-ui/` for the page at `/docs/swagger/`.
    pub swagger_ui_dir: PathBuf,
    /// Uppy's `dist` directory (the `uppy` npm package), whose `uppy.min.js` and
    /// `uppy.min.css` are served under `/ui/` for the page at `/`.
    pub uppy_dir: PathBuf,
    /// Origins (`scheme://host[:port]`, exactly as browsers send `Origin`) whose pages
    /// may call the tus endpoint `/files/` from another origin: their requests get the
    /// CORS headers tus browser clients need. Empty (the default): no CORS headers, so
    /// only same-origin pages (Ferry's own) can use it from a browser.
    pub cors_origins: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLocation {
    /// IPv4 or IPv6 prefix, e.g. `10.0.0.0/8`.
    pub prefix: String,
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// This worker's id in job records, the worker inventory, its AMQP connection names
    /// and consumer tags. Empty (the default): `<hostname>:<pid>`. Set it to the pod
    /// name on Kubernetes (`FERRY_WORKER__ID` from `metadata.name`).
    pub id: String,
    /// Operations endpoint: `/healthz`, `/readyz`, `/metrics`.
    pub listen: SocketAddr,
    /// Queues consumed: `assemble`, `replicate`, `delete`, `scrub`, `drop`.
    pub queues: Vec<String>,
    /// Jobs handled at once (the consumer prefetch) per queue.
    pub concurrency: u16,
    pub ssh_key: PathBuf,
    pub ssh_known_hosts: PathBuf,
    /// Per job kind (`assemble`, `replicate`, `verify`, `delete`, `drop_replica`):
    /// attempts, retry delays and time limit, over the defaults (`[worker.policy.verify]`,
    /// or `FERRY_WORKER__POLICY__VERIFY__MAX_ATTEMPTS=3`).
    pub policy: BTreeMap<String, JobPolicy>,
    /// Directory for ssh control sockets; keep the path short (`sun_path` is 108 bytes).
    pub ssh_control_dir: PathBuf,
    /// Passed to ssh `-c`; empty keeps OpenSSH's default.
    pub ssh_cipher: String,
    pub rsync_timeout_secs: u64,
    /// Deliveries of `ferry.replicate` held at once (its consumer prefetch): enough
    /// for the per-node batches to fill; bounded, and each holds only its message.
    /// Under load a node's batch is what queued while its session was busy, so the
    /// batches of one worker's lanes share this many files: at 64, 2 workers and 3
    /// nodes averaged 11 files per rsync session, at 256 about 21, and a session costs
    /// a process tree on both ends (ssh client, sshd, gate, two rsyncs: about 28
    /// CPU-ms, perf), so fewer, fuller sessions carry more files per CPU-second.
    /// The price: unacknowledged deliveries stay with their worker, so a worker added
    /// to work off a backlog gets only what the others have not taken, and large files
    /// (pushed alone, a few at a time per node) wait in the worker that took them.
    pub replicate_in_flight: u16,
    /// How long a node's batch waits for more files after its first, when the node's
    /// sessions are idle (under load a batch takes what queued while they were busy).
    pub batch_window_ms: u64,
    /// Most files in one rsync session.
    pub batch_max_files: usize,
    /// Most bytes in one rsync session.
    pub batch_max_bytes: u64,
    /// Files larger than this are pushed alone, at once, never behind a batch.
    pub batch_alone_bytes: u64,
    /// rsync batch sessions at once per node, per worker process.
    pub batch_sessions_per_node: usize,
    /// Hard limit for one job; below RabbitMQ's consumer timeout.
    pub job_timeout_secs: u64,
    /// How often a worker sweeps staging and node garbage.
    pub gc_interval_secs: u64,
    /// Garbage younger than this is left alone.
    pub gc_grace_secs: u64,
    /// Seconds a file's staging copy is kept after its replicas settled (every wanted
    /// one present), released then by the workers' staging sweep, which runs this often
    /// (at least every second, at most every `gc_interval_secs`). The API serves the
    /// staging copy while no node copy is healthy in its view (read-after-write before
    /// the first node copy); the linger covers the moment a fresh copy's node is
    /// briefly not healthy to the API (a late heartbeat). 0: the worker that recorded
    /// the last replica releases the copy at once.
    pub staging_linger_secs: u64,
}

/// One job kind's policy (`worker.policy.<kind>`); a missing value keeps the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobPolicy {
    /// Attempts in all before the job is given up (dead-lettered). Default 8.
    pub max_attempts: Option<u32>,
    /// Retry delay after failed attempt 1, 2, ...: names of the retry tiers `1s`, `5s`,
    /// `30s`, `2m` (the last repeats). Default all four in that order.
    pub backoff: Option<Vec<String>>,
    /// Hard limit of one attempt, in seconds. Default `worker.job_timeout_secs`.
    pub time_limit_secs: Option<u64>,
    /// Seconds a stopping worker (SIGTERM) waits for this kind's jobs in flight before
    /// it closes the connection and the broker hands them to another worker. Default
    /// 25; keep it below the supervisor's stop timeout (Kubernetes
    /// `terminationGracePeriodSeconds`, systemd `TimeoutStopSec`).
    pub drain_deadline_secs: Option<u64>,
}

impl WorkerConfig {
    /// The longest time limit any job kind has (what the reconciler waits beyond).
    pub fn longest_time_limit_secs(&self) -> u64 {
        self.policy.values().filter_map(|p| p.time_limit_secs).fold(self.job_timeout_secs, u64::max)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MonitorConfig {
    pub listen: SocketAddr,
    pub interval_ms: u64,
    pub probe_timeout_ms: u64,
    /// Each present replica's sha256 is re-checked on its node at least this often.
    pub scrub_interval_secs: u64,
    /// At most this many scrubs (verify jobs) are queued or running at once. Scrubs travel
    /// on their own queue (`ferry.scrub`); the bound keeps it short when the workers hash
    /// more slowly than the monitor schedules.
    pub scrub_max_queued: u32,
    /// A node down for longer than this no longer counts towards its files' replicas:
    /// they are copied to other nodes.
    pub node_grace_secs: u64,
    /// Files the replica sweeps (the top-up of under-replicated files, the trim of
    /// surplus copies) examine per round, in id order, each round going on where the
    /// last stopped: a round costs the same at a thousand files and at millions, and a
    /// pass over N files takes N / this rounds (rounds come every 5
    /// `monitor.interval_ms`). The files of copies that failed recently are examined
    /// every round besides. Default 10,000: about 0.1 s of PostgreSQL per round.
    pub sweep_files: u32,
    /// A job whose record stayed `queued`, `active` or `retrying` for
    /// `worker.job_timeout_secs` plus this long lost its message (a purged queue, a
    /// dead letter the broker made, a vanished worker): the monitor re-enqueues it
    /// through the outbox under its own id.
    pub reconcile_margin_secs: u64,
    /// Finished job records (`done`, `cancelled`) are deleted this many days after they
    /// finished; dead letters stay until replayed or discarded.
    pub job_retention_days: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeConfig {
    pub listen: SocketAddr,
    /// Storage root; every served path is confined below it.
    pub root: PathBuf,
    /// After a whole-file read proved a copy matches the sha256 signed into its link,
    /// whole reads of that unchanged copy are served without hashing for this long;
    /// 0 hashes every whole-file read. The monitor's scrub re-checks every copy anyway.
    pub reverify_secs: u64,
    /// Downloads (GETs with a body) one client address has in flight at once; more get
    /// 429 `too_many_downloads`. Each holds up to three 1 MiB read buffers of the
    /// node's 512, so one client cannot pin them all by not reading.
    pub max_downloads_per_client: usize,
    /// Downloads of one signed link in flight at once (multi-connection download tools
    /// open up to 16); more get 429 `too_many_downloads`.
    pub max_downloads_per_link: usize,
}

/// What every HTTP listener of every process holds a client to (docs/SECURITY.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Seconds a connection may take to deliver a request's whole header, counted from
    /// when it was opened or — on a keep-alive connection — from the end of the previous
    /// response; so it is also the idle keep-alive limit. Defends against idle,
    /// half-header and slowloris connections. 0 is refused.
    pub header_read_timeout_secs: u64,
    /// Connections one listener holds open at once; more wait in the kernel's accept
    /// queue until one closes. Lowered at start-up to three quarters of the process's
    /// open-file limit (`RLIMIT_NOFILE`), so a flood of connections cannot exhaust the
    /// descriptors the process needs for its own files and sockets. 0 is refused.
    pub max_connections: usize,
    /// Connections one client address may hold open on one listener at once; its next
    /// one is answered `503 too_many_connections` and closed at once, so one address
    /// cannot take a listener's every connection (`max_connections`) and turn all
    /// others away. Behind a proxy every client has the proxy's address: raise it to
    /// `max_connections` there. 0 is refused.
    pub max_connections_per_address: usize,
    /// Seconds a write to a connection may stay blocked (the client reads nothing)
    /// before the connection is closed and its response buffers freed, as nginx's
    /// `send_timeout` (60 s): a slow reader that keeps reading is never cut off.
    /// 0 is refused.
    pub write_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            header_read_timeout_secs: 15,
            max_connections: 1024,
            max_connections_per_address: 128,
            write_timeout_secs: 60,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Development,
            database: DatabaseConfig::default(),
            broker: BrokerConfig::default(),
            auth: AuthConfig::default(),
            signing: SigningConfig::default(),
            storage: StorageConfig::default(),
            api: ApiConfig::default(),
            worker: WorkerConfig::default(),
            monitor: MonitorConfig::default(),
            node: NodeConfig::default(),
            http: HttpConfig::default(),
        }
    }
}

const DEV_SECRET: &str = "ferry-development-secret-do-not-use-in-production";

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: Secret::new("postgres://ferry@127.0.0.1:5432/ferry"),
            url_file: None,
            pool_size: 16,
            acquire_timeout_ms: 5000,
        }
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            url: Secret::new("amqp://guest:guest@127.0.0.1:5672/%2f"),
            url_file: None,
            management_url: "http://127.0.0.1:15672".into(),
            heartbeat_secs: 15,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            jwt_secret: Secret::new(DEV_SECRET),
            jwt_secret_file: None,
            token_ttl_secs: 86_400,
            login_attempts_per_minute_per_address: 30,
            login_attempts_per_minute_per_user: 100,
        }
    }
}

impl Default for SigningConfig {
    fn default() -> Self {
        SigningConfig { secret: Secret::new(DEV_SECRET), secret_file: None, url_ttl_secs: 3600 }
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            staging_dir: PathBuf::from("/var/lib/ferry/staging"),
            replication_factor: 2,
            write_quorum: 0,
            upload_expiry_secs: 86_400,
            max_open_uploads_per_user: 1000,
            max_chunk_bytes: 256 << 20,
            max_file_bytes: 64 << 30,
            default_quota_bytes: 1 << 40,
            node_reserve_bytes: 64 << 20,
        }
    }
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: ([127, 0, 0, 1], 8000).into(),
            public_url: String::new(),
            complete_wait_secs: 30,
            max_concurrent_uploads: 256,
            max_concurrent_uploads_per_user: 32,
            body_read_timeout_secs: 20,
            body_min_rate_bytes_per_sec: 500,
            heartbeat_stale_secs: 10,
            client_locations: Vec::new(),
            page_size: 50,
            replica_cache_ms: 2000,
            redoc_bundle: PathBuf::from("/usr/share/ferry/redoc.standalone.js"),
            swagger_ui_dir: PathBuf::from("/usr/share/ferry/swagger-ui"),
            uppy_dir: PathBuf::from("/usr/share/ferry/uppy"),
            cors_origins: Vec::new(),
        }
    }
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            id: String::new(),
            listen: ([127, 0, 0, 1], 0).into(),
            queues: ["assemble", "replicate", "delete", "scrub", "drop"].map(String::from).to_vec(),
            concurrency: 4,
            ssh_key: PathBuf::from("/etc/ferry/ssh/id_ed25519"),
            ssh_known_hosts: PathBuf::from("/etc/ferry/ssh/known_hosts"),
            policy: BTreeMap::new(),
            ssh_control_dir: PathBuf::from("/tmp/ferry-ssh"),
            ssh_cipher: "aes128-gcm@openssh.com".into(),
            rsync_timeout_secs: 60,
            replicate_in_flight: 256,
            batch_window_ms: 5,
            batch_max_files: 64,
            batch_max_bytes: 64 << 20,
            batch_alone_bytes: 8 << 20,
            batch_sessions_per_node: 2,
            job_timeout_secs: 20 * 60,
            gc_interval_secs: 600,
            gc_grace_secs: 3600,
            staging_linger_secs: 10,
        }
    }
}

impl Default for MonitorConfig {
    fn default() -> Self {
        MonitorConfig {
            listen: ([127, 0, 0, 1], 0).into(),
            interval_ms: 2000,
            probe_timeout_ms: 1500,
            scrub_interval_secs: 7 * 86_400,
            scrub_max_queued: 32,
            node_grace_secs: 300,
            sweep_files: 10_000,
            reconcile_margin_secs: 300,
            job_retention_days: 14,
        }
    }
}

impl Default for NodeConfig {
    fn default() -> Self {
        NodeConfig {
            listen: ([127, 0, 0, 1], 9001).into(),
            root: PathBuf::from("/srv/ferry"),
            reverify_secs: 86_400,
            max_downloads_per_client: 32,
            max_downloads_per_link: 16,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    #[error("cannot read secret file {path}: {source}")]
    SecretFile { path: PathBuf, source: std::io::Error },
    #[error("{0}")]
    Invalid(String),
}

/// Which program loads the configuration: each checks only the secrets it uses (a
/// node agent never needs the JWT secret).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `ferry-api`: verifies tokens (`auth.jwt_secret`) and signs download links (`signing.secret`).
    Api,
    /// `ferry-worker`: signs the links it restores staging copies through (`signing.secret`).
    Worker,
    /// `ferry-monitor`: no secret of its own.
    Monitor,
    /// `ferry-node`: checks download links (`signing.secret`).
    Node,
    /// `ferry`, the operator CLI: no secret of its own.
    Cli,
}

impl Role {
    /// The secrets this role uses, by configuration key.
    fn secrets(self) -> &'static [&'static str] {
        match self {
            Role::Api => &["auth.jwt_secret", "signing.secret"],
            Role::Worker | Role::Node => &["signing.secret"],
            Role::Monitor | Role::Cli => &[],
        }
    }
}

impl Config {
    /// Loads defaults, then `path` (if any), then `FERRY_*` environment variables, and
    /// checks the result for `role`.
    ///
    /// Environment variables are `FERRY_MODE` and `FERRY_<SECTION>__<KEY>` (e.g.
    /// `FERRY_API__LISTEN`); other `FERRY_*` names (`FERRY_LOG`, the dev and test
    /// tools' own) are not configuration. Unknown sections and keys, in the file or the
    /// environment, are errors naming the key, so a typo never silently keeps a default.
    ///
    /// # Errors
    /// [`ConfigError::Parse`] for unreadable files, unknown keys and ill-typed values;
    /// [`ConfigError::SecretFile`]; [`ConfigError::Invalid`] for values out of range
    /// or, in production mode, a development secret the role uses.
    pub fn load(path: Option<&Path>, role: Role) -> Result<Config, ConfigError> {
        // Defaults come from the `#[serde(default)]` impls, not a serialized provider:
        // `Secret` serializes masked, which would overwrite the real defaults.
        let mut figment = Figment::new();
        if let Some(path) = path {
            figment = figment.merge(Toml::file_exact(path));
        }
        let env = Env::prefixed("FERRY_").filter(|key| key == "mode" || key.as_str().contains("__"));
        figment = figment.merge(env.split("__"));
        let mut config: Config = figment.extract().map_err(|e| ConfigError::Parse(Box::new(e)))?;
        config.resolve_secret_files()?;
        config.validate(role)?;
        Ok(config)
    }

    fn resolve_secret_files(&mut self) -> Result<(), ConfigError> {
        fn read(slot: &mut Secret, file: &Option<PathBuf>) -> Result<(), ConfigError> {
            if let Some(path) = file {
                let value = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::SecretFile { path: path.clone(), source })?;
                *slot = Secret::new(value.trim_end_matches(['\n', '\r']));
            }
            Ok(())
        }
        read(&mut self.database.url, &self.database.url_file)?;
        read(&mut self.broker.url, &self.broker.url_file)?;
        read(&mut self.auth.jwt_secret, &self.auth.jwt_secret_file)?;
        read(&mut self.signing.secret, &self.signing.secret_file)?;
        Ok(())
    }

    fn validate(&self, role: Role) -> Result<(), ConfigError> {
        if self.mode == Mode::Production {
            for (name, secret) in [("auth.jwt_secret", &self.auth.jwt_secret), ("signing.secret", &self.signing.secret)]
            {
                if !role.secrets().contains(&name) {
                    continue;
                }
                if secret.expose() == DEV_SECRET || secret.expose().len() < 32 {
                    return Err(ConfigError::Invalid(format!(
                        "{name} must be set to a random value of at least 32 bytes in production mode"
                    )));
                }
            }
        }
        if self.storage.replication_factor == 0 {
            return Err(ConfigError::Invalid("storage.replication_factor must be at least 1".into()));
        }
        if self.storage.write_quorum > self.storage.replication_factor {
            return Err(ConfigError::Invalid(format!(
                "storage.write_quorum must be between 0 and storage.replication_factor ({})",
                self.storage.replication_factor
            )));
        }
        if self.monitor.scrub_max_queued == 0 || self.monitor.sweep_files == 0 {
            return Err(ConfigError::Invalid(
                "monitor.scrub_max_queued and monitor.sweep_files must be at least 1".into(),
            ));
        }
        if self.http.header_read_timeout_secs == 0
            || self.http.max_connections == 0
            || self.http.max_connections_per_address == 0
            || self.http.write_timeout_secs == 0
        {
            return Err(ConfigError::Invalid(
                "http.header_read_timeout_secs, http.max_connections, http.max_connections_per_address and \
                 http.write_timeout_secs must be at least 1"
                    .into(),
            ));
        }
        if self.auth.login_attempts_per_minute_per_address == 0 || self.auth.login_attempts_per_minute_per_user == 0 {
            return Err(ConfigError::Invalid(
                "auth.login_attempts_per_minute_per_address and auth.login_attempts_per_minute_per_user must be at least 1"
                    .into(),
            ));
        }
        if self.node.max_downloads_per_client == 0 || self.node.max_downloads_per_link == 0 {
            return Err(ConfigError::Invalid(
                "node.max_downloads_per_client and node.max_downloads_per_link must be at least 1".into(),
            ));
        }
        if self.api.max_concurrent_uploads_per_user == 0
            || self.api.body_min_rate_bytes_per_sec == 0
            || self.storage.max_open_uploads_per_user == 0
        {
            return Err(ConfigError::Invalid(
                "api.max_concurrent_uploads_per_user, api.body_min_rate_bytes_per_sec and \
                 storage.max_open_uploads_per_user must be at least 1"
                    .into(),
            ));
        }
        if self.worker.concurrency == 0 {
            return Err(ConfigError::Invalid("worker.concurrency must be at least 1".into()));
        }
        if self.worker.replicate_in_flight == 0
            || self.worker.batch_max_files == 0
            || self.worker.batch_max_files > ferry_node_commands::MAX_FILES
            || self.worker.batch_sessions_per_node == 0
        {
            return Err(ConfigError::Invalid(format!(
                "worker.replicate_in_flight and worker.batch_sessions_per_node must be at least 1, \
                 worker.batch_max_files between 1 and {}",
                ferry_node_commands::MAX_FILES
            )));
        }
        Ok(())
    }

    pub fn upload_expiry(&self) -> Duration {
        Duration::from_secs(self.storage.upload_expiry_secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_when_serialized_and_debugged() {
        let config = Config::default();
        let text = serde_json::to_string(&config).expect("serializes");
        assert!(!text.contains(DEV_SECRET));
        assert!(!format!("{config:?}").contains(DEV_SECRET));
    }

    #[test]
    fn write_quorum_must_lie_between_zero_and_the_replication_factor() {
        let mut config = Config::default();
        for (quorum, ok) in [(0, true), (1, true), (2, true), (3, false)] {
            config.storage.write_quorum = quorum;
            assert_eq!(config.validate(Role::Api).is_ok(), ok, "write_quorum {quorum} with R = 2");
        }
    }

    #[test]
    fn production_mode_rejects_the_development_secret_of_the_roles_that_use_it() {
        let mut config = Config { mode: Mode::Production, ..Config::default() };
        for role in [Role::Api, Role::Worker, Role::Node] {
            assert!(matches!(config.validate(role), Err(ConfigError::Invalid(_))), "{role:?}");
        }
        for role in [Role::Monitor, Role::Cli] {
            assert!(config.validate(role).is_ok(), "{role:?} uses no secret");
        }
        config.signing.secret = Secret::new("s".repeat(32));
        assert!(config.validate(Role::Node).is_ok(), "a node agent does not need the JWT secret");
        assert!(config.validate(Role::Api).is_err(), "the API does");
    }

    /// Runs `f` in figment's Jail: a private working directory and environment,
    /// serialised with other jailed tests, restored afterwards.
    #[allow(clippy::result_large_err)] // figment's Jail decides the closure's type
    fn jail(f: impl FnOnce(&mut figment::Jail)) {
        figment::Jail::expect_with(|jail| {
            f(jail);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_or_the_environment_are_errors_naming_them() {
        jail(|jail| {
            jail.create_file("ferry.toml", "[api]\nlisten = \"127.0.0.1:1\"\ncomplete_wait_sec = 5\n").expect("file");
            let err = Config::load(Some(Path::new("ferry.toml")), Role::Api).expect_err("typo refused");
            assert!(err.to_string().contains("complete_wait_sec"), "{err}");
            jail.create_file("ok.toml", "[api]\ncomplete_wait_secs = 5\n[nodes]\nx = 1\n").expect("file");
            let err = Config::load(Some(Path::new("ok.toml")), Role::Api).expect_err("unknown section refused");
            assert!(err.to_string().contains("nodes"), "{err}");
            jail.set_env("FERRY_WORKER__CONCURENCY", "4");
            let err = Config::load(None, Role::Worker).expect_err("typo in the environment refused");
            assert!(err.to_string().to_lowercase().contains("concurency"), "{err}");
        });
    }

    #[test]
    fn other_ferry_variables_are_not_configuration() {
        jail(|jail| {
            jail.set_env("FERRY_LOG", "debug");
            jail.set_env("FERRY_DEV_STATE", "/tmp/x");
            jail.set_env("FERRY_MODE", "development");
            jail.set_env("FERRY_WORKER__CONCURRENCY", "7");
            let config = Config::load(None, Role::Worker).expect("loads");
            assert_eq!(config.worker.concurrency, 7);
        });
    }
}
