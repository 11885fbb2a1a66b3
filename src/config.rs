//! Configuration: built-in defaults → TOML file → `GATEHOUSE_*` environment (nested with `__`).
//!
//! Loaded once at start, validated, and refused with a message that names the key and says how
//! to fix it. Secret values are [`Secret`]s: they print as `***SECRET***` in `Debug` and in
//! `gatehouse check-config`, and can come from a `*_FILE` key or a systemd credential instead.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// What every secret prints as.
pub const MASK: &str = "***SECRET***";

/// A secret configuration value; never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    /// Wraps a value.
    pub fn new(value: String) -> Self {
        Secret(SecretString::from(value))
    }
    /// The value, for the one place that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MASK)
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// Address to listen on, e.g. `127.0.0.1:8080`.
    pub bind: String,
    /// Directory for the database, key files and the outbox.
    pub data_dir: PathBuf,
    /// The URL people reach Gatehouse at (links in mail, cookie security).
    pub public_url: String,
    /// Development sandbox: demo data, outbox mail, non-secure cookies allowed.
    pub dev: bool,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Peers whose `X-Forwarded-For` is believed (IP addresses or CIDR ranges).
    pub trusted_proxies: Vec<String>,
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Logging.
    pub log: LogSettings,
    /// The SQLite database.
    pub database: DatabaseSettings,
    /// Server secrets (the hashing pepper).
    pub secrets: SecretSettings,
    /// Password hashing and policy.
    pub password: PasswordSettings,
    /// Throttling of failed sign-ins.
    pub login: LoginSettings,
    /// The scheduled cleanup of expired records.
    pub cleanup: CleanupSettings,
    /// Browser and handshake sessions.
    pub session: SessionSettings,
    /// API keys.
    pub keys: KeySettings,
    /// Rate-limit plans by name.
    pub plans: BTreeMap<String, Plan>,
    /// JWT access and refresh tokens.
    pub jwt: JwtSettings,
    /// Outgoing mail.
    pub mail: MailSettings,
    /// Magic links.
    pub magic_link: MagicLinkSettings,
    /// Customer portal tokens.
    pub portal: PortalSettings,
    /// Handshake sign-in, secrets and runs.
    pub handshake: HandshakeSettings,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Human,
    /// One JSON object per line.
    Json,
}

/// Logging settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `human` or `json`.
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `gatehouse=debug,info`.
    pub level: String,
}

/// SQLite `synchronous` setting.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// Survives power loss (default).
    Full,
    /// Survives a crash of the process, not always a power cut.
    Normal,
    /// Extra durability of the directory entries.
    Extra,
}

/// Database settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Database file; default `<data_dir>/gatehouse.db`.
    pub path: Option<PathBuf>,
    /// `full` (default) so an acknowledged write survives a power cut.
    pub synchronous: Synchronous,
    /// How long a writer waits for the lock, in milliseconds.
    pub busy_timeout_ms: u64,
    /// Reader threads, each with its own read-only connection; 0 (the default) means one per
    /// core, at least 2.
    pub pool_size: u32,
}

/// Server secrets.
#[derive(Clone, Debug, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SecretSettings {
    /// The pepper for keyed hashes, base64url (32 bytes or more). Generated if unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pepper: Option<Secret>,
    /// A file holding the pepper.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pepper_file: Option<PathBuf>,
}

/// Password hashing and policy.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordSettings {
    /// Argon2id passes (OWASP minimum at 19 MiB: 2).
    pub argon2_ops_limit: u64,
    /// Argon2id memory in KiB (OWASP minimum: 19456).
    pub argon2_mem_limit_kib: u64,
    /// Hashes computed at once; 0 means one per core.
    pub hash_concurrency: usize,
    /// Hash requests allowed to wait for a slot before new ones get 503.
    pub hash_queue: usize,
    /// Shortest password accepted.
    pub min_length: usize,
    /// Longest password accepted (never truncated).
    pub max_length: usize,
    /// Lowest zxcvbn score accepted (0–4).
    pub min_score: u8,
}

/// Throttling of failed sign-ins and magic-link requests.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginSettings {
    /// Failures per account in one window before it is throttled.
    pub max_failures_per_account: u32,
    /// Failures per client address in one window before it is throttled.
    pub max_failures_per_address: u32,
    /// Length of the throttling window, in seconds.
    pub window_secs: u64,
    /// Consecutive failures (never reset by a window, only by a success) after which an account
    /// refuses sign-ins from unfamiliar addresses for `lockout_secs` after each further failure
    /// (NIST SP 800-63B: at most 100).
    pub max_consecutive_failures: u32,
    /// How long the consecutive-failure lock-out lasts after the last failure, in seconds.
    pub lockout_secs: u64,
    /// An address that signed into an account within this many days is exempt from that
    /// account's lock-out (an attacker elsewhere cannot lock the real user out).
    pub remember_address_days: u32,
}

/// Scheduled cleanup.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanupSettings {
    /// Cron with seconds (`sec min hour dom mon dow`); empty disables the job.
    pub schedule: String,
    /// Longest time one delete transaction may hold the write lock, in milliseconds.
    pub batch_time_budget_ms: u64,
    /// Days to keep audit events.
    pub audit_retention_days: u32,
}

/// Session lifetimes.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSettings {
    /// Idle timeout in seconds.
    pub idle_timeout_secs: u64,
    /// Absolute lifetime in seconds.
    pub absolute_timeout_secs: u64,
}

/// API key settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeySettings {
    /// Plan given to new keys.
    pub default_plan: String,
    /// Plan whose limits apply to test-mode keys.
    pub test_plan: String,
    /// A new key revokes the user's previous one.
    pub single_active_per_user: bool,
    /// How often `last_used_at` is flushed to the database, in seconds.
    pub last_used_flush_secs: u64,
    /// How fine `last_used_at` is kept, in seconds: a key's use is recorded when it comes at
    /// least this long (less a fixed per-key share of up to a quarter, so that keys first used
    /// together do not stay due together) after the last recorded one (0 records every second).
    pub last_used_resolution_secs: u64,
    /// Verified keys kept in the in-memory verification cache; 0 disables the cache. Trimmed to
    /// 80 % (lapsed entries, then the least recently used) once it is 90 % full.
    pub cache_capacity: usize,
    /// Longest a cache entry is trusted before the database is asked again, in seconds. Changes
    /// made through Gatehouse (this server or the CLI) reach the cache within a second anyway;
    /// this bounds how long an edit made behind its back (sqlite3 by hand) takes to be seen.
    pub cache_ttl_secs: u64,
    /// Invalid credentials one client address may present to verify / forward-auth per minute.
    pub invalid_attempts_per_minute: u32,
    /// Where forward-auth sends a browser page navigation without a credential (302);
    /// empty answers 401 instead.
    pub forward_auth_login_url: String,
}

/// A rate-limit plan.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Requests per hour.
    pub requests_per_hour: u64,
    /// Requests in flight at once.
    pub concurrent: u32,
}

/// JWT settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtSettings {
    /// `iss` claim; default the public URL.
    pub issuer: Option<String>,
    /// `aud` claim.
    pub audience: String,
    /// Access token lifetime, seconds.
    pub access_ttl_secs: u64,
    /// Refresh token lifetime, seconds.
    pub refresh_ttl_secs: u64,
    /// Window in which a retried refresh gets the same new pair, seconds.
    pub refresh_grace_secs: u64,
    /// Clock-skew allowance when checking `exp`, seconds.
    pub leeway_secs: u64,
}

/// Mail transport.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// Write `.eml` files to `<data_dir>/outbox/`.
    Outbox,
    /// Send through an SMTP relay.
    Smtp,
}

/// SMTP connection security.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS upgrade (port 587).
    Starttls,
    /// TLS from the start (port 465).
    Tls,
    /// Plain text (local relays and tests only).
    None,
}

/// Mail settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    /// `outbox` or `smtp`.
    pub transport: MailTransport,
    /// The From address.
    pub from: String,
    /// SMTP relay host.
    pub smtp_host: String,
    /// SMTP relay port.
    pub smtp_port: u16,
    /// `starttls`, `tls` or `none`.
    pub smtp_security: SmtpSecurity,
    /// SMTP user name.
    pub smtp_username: Option<String>,
    /// SMTP password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_password: Option<Secret>,
    /// A file holding the SMTP password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp_password_file: Option<PathBuf>,
    /// Attempts per message before it is given up (logged), with backoff between them.
    pub send_attempts: u32,
    /// SMTP connection and command timeout, seconds.
    pub smtp_timeout_secs: u64,
}

/// Magic-link settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MagicLinkSettings {
    /// Link lifetime, seconds.
    pub ttl_secs: u64,
    /// Unknown addresses may sign up into the default tenant.
    pub allow_signup: bool,
    /// Link requests per address in one window.
    pub max_per_address: u32,
    /// Link requests per client address in one window.
    pub max_per_client: u32,
    /// Length of the request-throttling window, seconds.
    pub window_secs: u64,
}

/// Portal token settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PortalSettings {
    /// Longest `expiresIn` accepted, seconds.
    pub max_expires_in_secs: u64,
}

/// Handshake sign-in settings.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandshakeSettings {
    /// How long a started handshake waits for its confirm call, seconds.
    pub ttl_secs: u64,
    /// Most handshakes waiting at once (each is a little memory).
    pub max_pending: usize,
    /// Lifetime of a run session (`dst_run_`), seconds.
    pub run_ttl_secs: u64,
    /// Largest webhook callback body stored for a run, bytes.
    pub max_callback_bytes: usize,
    /// Largest secret value, bytes.
    pub max_secret_bytes: usize,
}

impl Default for HandshakeSettings {
    fn default() -> Self {
        HandshakeSettings {
            ttl_secs: 60,
            max_pending: 10_000,
            run_ttl_secs: 86_400,
            max_callback_bytes: 64 * 1024,
            max_secret_bytes: 64 * 1024,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let mut plans = BTreeMap::new();
        plans.insert(
            "free".to_owned(),
            Plan {
                requests_per_hour: 100,
                concurrent: 2,
            },
        );
        plans.insert(
            "pro".to_owned(),
            Plan {
                requests_per_hour: 1_000,
                concurrent: 10,
            },
        );
        plans.insert(
            "enterprise".to_owned(),
            Plan {
                requests_per_hour: 100_000,
                concurrent: 100,
            },
        );
        plans.insert(
            "test".to_owned(),
            Plan {
                requests_per_hour: 50,
                concurrent: 2,
            },
        );
        Settings {
            bind: "127.0.0.1:8080".to_owned(),
            data_dir: PathBuf::from("./data"),
            public_url: "http://127.0.0.1:8080".to_owned(),
            dev: false,
            workers: 0,
            trusted_proxies: Vec::new(),
            max_body_bytes: 64 * 1024,
            log: LogSettings::default(),
            database: DatabaseSettings::default(),
            secrets: SecretSettings::default(),
            password: PasswordSettings::default(),
            login: LoginSettings::default(),
            cleanup: CleanupSettings::default(),
            session: SessionSettings::default(),
            keys: KeySettings::default(),
            plans,
            jwt: JwtSettings::default(),
            mail: MailSettings::default(),
            magic_link: MagicLinkSettings::default(),
            portal: PortalSettings::default(),
            handshake: HandshakeSettings::default(),
        }
    }
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            format: LogFormat::Human,
            level: "info".to_owned(),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            path: None,
            synchronous: Synchronous::Full,
            busy_timeout_ms: 5_000,
            pool_size: 0,
        }
    }
}

impl Default for PasswordSettings {
    fn default() -> Self {
        PasswordSettings {
            argon2_ops_limit: 2,
            argon2_mem_limit_kib: 19_456,
            hash_concurrency: 0,
            hash_queue: 64,
            min_length: 8,
            max_length: 1024,
            min_score: 2,
        }
    }
}

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings {
            max_failures_per_account: 10,
            max_failures_per_address: 50,
            window_secs: 300,
            max_consecutive_failures: 100,
            lockout_secs: 3_600,
            remember_address_days: 30,
        }
    }
}

impl Default for CleanupSettings {
    fn default() -> Self {
        CleanupSettings {
            schedule: "0 */5 * * * *".to_owned(),
            batch_time_budget_ms: 5,
            audit_retention_days: 90,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            idle_timeout_secs: 3_600,
            absolute_timeout_secs: 86_400,
        }
    }
}

impl Default for KeySettings {
    fn default() -> Self {
        KeySettings {
            default_plan: "free".to_owned(),
            test_plan: "test".to_owned(),
            single_active_per_user: false,
            last_used_flush_secs: 10,
            last_used_resolution_secs: 60,
            cache_capacity: 200_000,
            cache_ttl_secs: 300,
            invalid_attempts_per_minute: 60,
            forward_auth_login_url: String::new(),
        }
    }
}

impl Default for JwtSettings {
    fn default() -> Self {
        JwtSettings {
            issuer: None,
            audience: "gatehouse".to_owned(),
            access_ttl_secs: 300,
            refresh_ttl_secs: 7 * 86_400,
            refresh_grace_secs: 10,
            leeway_secs: 30,
        }
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings {
            transport: MailTransport::Outbox,
            from: "Gatehouse <gatehouse@localhost>".to_owned(),
            smtp_host: "localhost".to_owned(),
            smtp_port: 587,
            smtp_security: SmtpSecurity::Starttls,
            smtp_username: None,
            smtp_password: None,
            smtp_password_file: None,
            send_attempts: 3,
            smtp_timeout_secs: 15,
        }
    }
}

impl Default for MagicLinkSettings {
    fn default() -> Self {
        MagicLinkSettings {
            ttl_secs: 600,
            allow_signup: false,
            max_per_address: 5,
            max_per_client: 30,
            window_secs: 900,
        }
    }
}

impl Default for PortalSettings {
    fn default() -> Self {
        PortalSettings {
            max_expires_in_secs: 30 * 86_400,
        }
    }
}

/// A configuration that cannot be used; the message names the key and the fix.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

fn invalid(key: &str, fix: &str) -> ConfigError {
    ConfigError(format!("`{key}` is invalid: {fix}"))
}

/// Where to read the TOML file from: `--config`, else `GATEHOUSE_CONFIG`, else `./gatehouse.toml` if present.
pub fn config_file(explicit: Option<&Path>) -> Result<Option<PathBuf>, ConfigError> {
    let chosen = explicit
        .map(Path::to_path_buf)
        .or_else(|| std::env::var_os("GATEHOUSE_CONFIG").map(PathBuf::from));
    match chosen {
        Some(p) if !p.is_file() => Err(ConfigError(format!(
            "config file {} does not exist; fix the --config / GATEHOUSE_CONFIG path or create it (see the sample gatehouse.toml)",
            p.display()
        ))),
        Some(p) => Ok(Some(p)),
        None => {
            let default = PathBuf::from("gatehouse.toml");
            Ok(default.is_file().then_some(default))
        }
    }
}

impl Settings {
    /// Loads defaults → TOML file → environment, then validates.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(f) = file {
            fig = fig.merge(Toml::file(f));
        }
        fig = fig.merge(Env::prefixed("GATEHOUSE_").split("__").ignore(&["config"]));
        let settings: Settings = fig.extract().map_err(|e| {
            let mut msgs = Vec::new();
            for err in e {
                let key = err.path.join(".");
                let source = err
                    .metadata
                    .as_ref()
                    .map(|m| m.name.to_string())
                    .unwrap_or_default();
                let mut line = format!("{} (key `{}`", err.kind, key);
                if !source.is_empty() {
                    line.push_str(&format!(", from {source}"));
                }
                line.push(')');
                msgs.push(line);
            }
            ConfigError(format!(
                "{}. Fix or remove that key; `gatehouse check-config` prints every valid key with its value",
                msgs.join("; ")
            ))
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.bind.parse::<SocketAddr>().is_err() {
            return Err(invalid(
                "bind",
                "use an address and port such as 127.0.0.1:8080 (GATEHOUSE_BIND)",
            ));
        }
        if !(self.public_url.starts_with("http://") || self.public_url.starts_with("https://")) {
            return Err(invalid(
                "public_url",
                "use the full URL people reach Gatehouse at, e.g. https://auth.example.com",
            ));
        }
        for p in &self.trusted_proxies {
            if parse_cidr(p).is_none() {
                return Err(invalid(
                    "trusted_proxies",
                    &format!("`{p}` is not an IP address or CIDR range like 10.0.0.0/8"),
                ));
            }
        }
        if self.password.argon2_mem_limit_kib < 19_456 || self.password.argon2_ops_limit < 2 {
            return Err(invalid(
                "password.argon2_*",
                "use at least OWASP's minimum: argon2_mem_limit_kib = 19456 and argon2_ops_limit = 2",
            ));
        }
        if self.password.min_length < 8 || self.password.max_length < 64 {
            return Err(invalid(
                "password.min_length / max_length",
                "min_length must be at least 8 and max_length at least 64",
            ));
        }
        if self.password.min_score > 4 {
            return Err(invalid(
                "password.min_score",
                "use a zxcvbn score from 0 to 4",
            ));
        }
        if !self.plans.contains_key(&self.keys.default_plan) {
            return Err(invalid(
                "keys.default_plan",
                "name a plan defined under [plans.<name>]",
            ));
        }
        if !self.plans.contains_key(&self.keys.test_plan) {
            return Err(invalid(
                "keys.test_plan",
                "name a plan defined under [plans.<name>]",
            ));
        }
        for (name, plan) in &self.plans {
            if plan.requests_per_hour == 0 || plan.requests_per_hour > u64::from(u32::MAX) {
                return Err(invalid(
                    &format!("plans.{name}.requests_per_hour"),
                    "use a number from 1 to 4294967295",
                ));
            }
            if plan.concurrent == 0 {
                return Err(invalid(
                    &format!("plans.{name}.concurrent"),
                    "use at least 1",
                ));
            }
        }
        if self.keys.last_used_flush_secs == 0 || self.keys.invalid_attempts_per_minute == 0 {
            return Err(invalid(
                "keys.last_used_flush_secs / keys.invalid_attempts_per_minute",
                "use at least 1",
            ));
        }
        if !self.cleanup.schedule.trim().is_empty()
            && self.cleanup.schedule.split_whitespace().count() < 6
        {
            return Err(invalid(
                "cleanup.schedule",
                "use cron with seconds, e.g. \"0 */5 * * * *\", or \"\" to disable the job",
            ));
        }
        if self.session.idle_timeout_secs == 0
            || self.session.absolute_timeout_secs < self.session.idle_timeout_secs
        {
            return Err(invalid(
                "session.*_timeout_secs",
                "idle_timeout_secs must be positive and not longer than absolute_timeout_secs",
            ));
        }
        if self.login.max_consecutive_failures == 0 || self.login.max_consecutive_failures > 100 {
            return Err(invalid(
                "login.max_consecutive_failures",
                "use 1 to 100 (NIST SP 800-63B allows at most 100 consecutive failures)",
            ));
        }
        if self.jwt.access_ttl_secs == 0
            || self.jwt.refresh_ttl_secs < self.jwt.access_ttl_secs
            || self.jwt.refresh_grace_secs >= self.jwt.refresh_ttl_secs
            || self.jwt.leeway_secs > 300
        {
            return Err(invalid(
                "jwt.*",
                "access_ttl_secs must be positive and not longer than refresh_ttl_secs, \
                 refresh_grace_secs shorter than refresh_ttl_secs, leeway_secs at most 300",
            ));
        }
        if self.jwt.audience.trim().is_empty() {
            return Err(invalid(
                "jwt.audience",
                "name the audience, e.g. \"gatehouse\"",
            ));
        }
        if self.handshake.ttl_secs == 0 || self.handshake.run_ttl_secs == 0 {
            return Err(invalid(
                "handshake.ttl_secs / run_ttl_secs",
                "use a positive number of seconds (defaults: 60 and 86400)",
            ));
        }
        if self.max_body_bytes < 1024 {
            return Err(invalid("max_body_bytes", "use at least 1024"));
        }
        Ok(())
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.database
            .path
            .clone()
            .unwrap_or_else(|| self.data_dir.join("gatehouse.db"))
    }

    /// `iss` claim of issued JWTs.
    pub fn jwt_issuer(&self) -> String {
        self.jwt
            .issuer
            .clone()
            .unwrap_or_else(|| self.public_url.trim_end_matches('/').to_owned())
    }

    /// Whether the public URL is https (cookies get `Secure` and `__Host-`).
    pub fn is_https(&self) -> bool {
        self.public_url.starts_with("https://")
    }

    /// The effective config as TOML, secrets masked.
    pub fn to_masked_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot render: {e}"))
    }
}

/// Parses `1.2.3.4`, `1.2.3.0/24`, `::1` or `fd00::/8` into (network, prefix length).
pub fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (addr, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = s.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((addr, len))
}

/// Whether `ip` lies in the CIDR range `(net, len)`.
pub fn cidr_contains(net: (IpAddr, u8), ip: IpAddr) -> bool {
    match (net.0, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(net.1))
            };
            (u32::from(n) & mask) == (u32::from(i) & mask)
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let mask = if net.1 == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(net.1))
            };
            (u128::from(n) & mask) == (u128::from(i) & mask)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_masked_in_debug_and_toml() {
        let mut s = Settings::default();
        s.secrets.pepper = Some(Secret::new("hunter2-pepper".into()));
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!s.to_masked_toml().contains("hunter2"));
        assert!(s.to_masked_toml().contains(MASK));
    }

    #[test]
    fn cidr_matching() {
        let net = parse_cidr("10.0.0.0/8").unwrap();
        assert!(cidr_contains(net, "10.1.2.3".parse().unwrap()));
        assert!(!cidr_contains(net, "11.1.2.3".parse().unwrap()));
        assert!(cidr_contains(
            parse_cidr("::1").unwrap(),
            "::1".parse().unwrap()
        ));
        assert!(parse_cidr("10.0.0.0/33").is_none());
    }

    #[test]
    fn defaults_validate() {
        Settings::default().validate().unwrap();
    }
}
