//! The command line (clap). Each command calls the same service the HTTP layer calls.
//!
//! Exit codes a script can rely on: 0 success, 1 the operation failed, 2 usage error,
//! 3 configuration error, 4 not found, 5 conflict (already exists).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use crate::app::Application;
use crate::config::{self, LogFormat, Settings};
use crate::error::Error;
use crate::services::types::{Email, Password, Username};
use crate::services::{self, Ctx};

mod handshake;

/// Gatehouse: a self-hosted authentication appliance.
#[derive(Debug, Parser)]
#[command(name = "gatehouse", version, about)]
pub struct Cli {
    /// TOML config file (default: $GATEHOUSE_CONFIG, else ./gatehouse.toml if present).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        /// Local sandbox: demo admin and tenant, mail to data/outbox/, non-secure cookies.
        #[arg(long)]
        dev: bool,
    },
    /// Create the data directory, key files and database.
    Init,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the effective configuration, secrets masked.
    CheckConfig,
    /// Manage users.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage the JWT signing keys.
    #[command(subcommand)]
    SigningKey(SigningKeyCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Delete expired records once and print what was deleted.
    Cleanup,
    /// Copy the live database to PATH (SQLite online backup).
    Backup {
        /// Destination file (must not exist).
        path: PathBuf,
    },
    /// Manage tenants and their handshake keys.
    #[command(subcommand)]
    Tenant(handshake::TenantCommand),
    /// Sign in to a tenant on a server with the handshake (API key + tenant private key).
    Login(handshake::LoginArgs),
    /// Tenant secrets, through the signed-in session.
    Secrets {
        /// Tenant id (default: the latest sign-in).
        #[arg(long)]
        tenant: Option<String>,
        /// What to do.
        #[command(subcommand)]
        command: handshake::SecretsCommand,
    },
    /// Runs, through the signed-in session.
    Runs {
        /// Tenant id (default: the latest sign-in).
        #[arg(long)]
        tenant: Option<String>,
        /// What to do.
        #[command(subcommand)]
        command: handshake::RunsCommand,
    },
    /// Rotate the signed-in tenant's key: a new private key is made here and printed once;
    /// the server re-wraps the data key and ends the tenant's other sessions.
    RotateKey {
        /// Tenant id (default: the latest sign-in).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// End the signed-in session (of `--tenant`, default the latest sign-in).
    Logout {
        /// Tenant id.
        #[arg(long)]
        tenant: Option<String>,
    },
}

/// `gatehouse user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints the new user's id.
    Add {
        /// User name.
        name: String,
        /// E-mail address.
        #[arg(long)]
        email: Option<String>,
        /// Make the user an administrator.
        #[arg(long)]
        admin: bool,
        /// Grant a permission (repeatable), e.g. users.view.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Set a user's password (read from standard input); ends their sessions.
    Passwd {
        /// User name.
        name: String,
        /// Read the password from standard input (required).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user and end their sessions.
    Disable {
        /// User name.
        name: String,
    },
    /// Re-enable a disabled user.
    Enable {
        /// User name.
        name: String,
    },
}

/// `gatehouse signing-key …`
#[derive(Debug, Subcommand)]
pub enum SigningKeyCommand {
    /// Add a new Ed25519 key that signs from now on; prints its kid. The old key stays
    /// published and accepted until every token it signed has expired.
    Rotate {
        /// The old keys are compromised: stop accepting them (and their tokens) at once.
        #[arg(long)]
        drop_old: bool,
    },
    /// List the keys: kid, created, retire time, whether active.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `gatehouse key …`
#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; prints the key alone on standard output (shown once).
    Create {
        /// Owner's user name.
        #[arg(long)]
        user: String,
        /// Display name of the key.
        #[arg(long)]
        name: String,
        /// `live` (default) or `test`.
        #[arg(long, default_value = "live")]
        mode: String,
        /// Rate-limit plan (default `keys.default_plan`).
        #[arg(long)]
        plan: Option<String>,
        /// Tenant id (default: the default tenant).
        #[arg(long)]
        tenant: Option<String>,
        /// Issue a `pk_` key (agent-API contract) instead of `sk_`.
        #[arg(long)]
        public: bool,
        /// Expire the key after this many seconds.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// List live keys (masked), optionally of one user.
    List {
        /// Only this user's keys.
        #[arg(long)]
        user: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id. A running server stops accepting it within about a second.
    Revoke {
        /// Key id (from `key list`).
        id: i64,
    },
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let code = match &e {
            Error::NotFound(_) => 4,
            Error::Conflict(_) => 5,
            _ => 1,
        };
        let message = match &e {
            Error::Internal(detail) | Error::Unavailable(detail) => detail.clone(),
            other => other.public_message(),
        };
        Failure { code, message }
    }
}

impl From<config::ConfigError> for Failure {
    fn from(e: config::ConfigError) -> Self {
        Failure {
            code: 3,
            message: e.to_string(),
        }
    }
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("gatehouse: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn init_logging(settings: &Settings, quiet: bool) {
    use tracing_subscriber::EnvFilter;
    let level = if quiet {
        "warn"
    } else {
        settings.log.level.as_str()
    };
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match settings.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Human => builder.try_init(),
    };
}

fn read_password_stdin(flag: bool) -> Result<Password, Failure> {
    if !flag {
        return Err(Failure {
            code: 2,
            message: "pass --password-stdin and the password on standard input (never on the command line)".into(),
        });
    }
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot read standard input: {e}"),
        })?;
    let pw = s.strip_suffix('\n').unwrap_or(&s);
    let pw = pw.strip_suffix('\r').unwrap_or(pw);
    Ok(Password::new(pw.to_owned()))
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            code: 1,
            message: format!("cannot start the async runtime: {e}"),
        })
}

fn open(settings: Settings) -> Result<Arc<Ctx>, Failure> {
    Ok(Ctx::open(settings)?)
}

fn run(cli: Cli) -> Result<(), Failure> {
    // Client commands talk to a server and need no server configuration.
    match cli.command {
        Command::Login(args) => return handshake::login(args),
        Command::Secrets { tenant, command } => return handshake::secrets(tenant, command),
        Command::Runs { tenant, command } => return handshake::runs(tenant, command),
        Command::Logout { tenant } => return handshake::logout(tenant),
        Command::RotateKey { tenant } => return handshake::rotate_key(tenant),
        _ => {}
    }
    let file = config::config_file(cli.config.as_deref())?;
    let mut settings = Settings::load(file.as_deref())?;
    match cli.command {
        Command::Serve { dev } => {
            if dev {
                settings.dev = true;
            }
            init_logging(&settings, false);
            serve(settings)
        }
        Command::CheckConfig => {
            print!("{}", settings.to_masked_toml());
            Ok(())
        }
        Command::Init => {
            init_logging(&settings, true);
            let ctx = open(settings)?;
            let rt = runtime()?;
            let t = rt.block_on(services::tenants::default_tenant(&ctx))?;
            println!("data_dir={}", ctx.settings.data_dir.display());
            println!("database={}", ctx.settings.database_path().display());
            println!("default_tenant={}", t.id);
            Ok(())
        }
        Command::Migrate => {
            init_logging(&settings, true);
            let ctx = open(settings)?;
            let rt = runtime()?;
            let v = rt.block_on(ctx.db.schema_version())?;
            println!("schema_version={v}");
            Ok(())
        }
        Command::Cleanup => {
            init_logging(&settings, true);
            let ctx = open(settings)?;
            let rt = runtime()?;
            let report = rt.block_on(services::cleanup::run_once(&ctx))?;
            for t in &report.tables {
                println!("{}={}", t.table, t.deleted);
            }
            println!("total={}", report.deleted);
            let longest = report
                .tables
                .iter()
                .map(|t| t.longest_tx_us)
                .max()
                .unwrap_or(0);
            let batches: u64 = report.tables.iter().map(|t| t.batches).sum();
            println!("batches={batches}");
            println!("longest_tx_ms={:.2}", longest as f64 / 1000.0);
            println!("elapsed_ms={}", report.elapsed_ms);
            Ok(())
        }
        Command::Backup { path } => {
            init_logging(&settings, true);
            if path.exists() {
                return Err(Failure {
                    code: 5,
                    message: format!("{} already exists; choose a new file", path.display()),
                });
            }
            let ctx = open(settings)?;
            crate::store::backup(&ctx.db, &path)?;
            println!("{}", path.display());
            Ok(())
        }
        Command::User(cmd) => {
            init_logging(&settings, true);
            user_command(settings, cmd)
        }
        Command::SigningKey(cmd) => {
            init_logging(&settings, true);
            signing_key_command(settings, cmd)
        }
        Command::Tenant(cmd) => {
            init_logging(&settings, true);
            handshake::tenant_command(settings, cmd)
        }
        Command::Login(_)
        | Command::Secrets { .. }
        | Command::Runs { .. }
        | Command::Logout { .. }
        | Command::RotateKey { .. } => Ok(()),
        Command::Key(cmd) => {
            init_logging(&settings, true);
            key_command(settings, cmd)
        }
    }
}

fn user_command(settings: Settings, cmd: UserCommand) -> Result<(), Failure> {
    let ctx = open(settings)?;
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            UserCommand::Add {
                name,
                email,
                admin,
                permissions,
                password_stdin,
            } => {
                let password = if password_stdin {
                    Some(read_password_stdin(true)?)
                } else {
                    None
                };
                let user = services::users::create(
                    &ctx,
                    services::users::NewUser {
                        username: Username::parse(&name)?,
                        email: email.as_deref().map(Email::parse).transpose()?,
                        password,
                        is_admin: admin,
                        permissions,
                    },
                )
                .await?;
                println!("{}", user.id);
            }
            UserCommand::List { json } => {
                let users = services::users::list(&ctx, 1_000, 0).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&users).map_err(Error::internal)?
                    );
                } else {
                    println!("ID     USERNAME                 EMAIL                            ADMIN  DISABLED");
                    for u in users {
                        println!(
                            "{:<6} {:<24} {:<32} {:<6} {}",
                            u.id,
                            u.username,
                            u.email.unwrap_or_default(),
                            u.is_admin,
                            u.disabled
                        );
                    }
                }
            }
            UserCommand::Passwd {
                name,
                password_stdin,
            } => {
                let pw = read_password_stdin(password_stdin)?;
                let user = services::users::by_username(&ctx, &Username::parse(&name)?).await?;
                services::users::set_password(&ctx, user.id, &pw, None).await?;
                println!("{}", user.id);
            }
            UserCommand::Disable { name } => {
                let user = services::users::by_username(&ctx, &Username::parse(&name)?).await?;
                services::users::set_disabled(&ctx, user.id, true).await?;
                println!("{}", user.id);
            }
            UserCommand::Enable { name } => {
                let user = services::users::by_username(&ctx, &Username::parse(&name)?).await?;
                services::users::set_disabled(&ctx, user.id, false).await?;
                println!("{}", user.id);
            }
        }
        Ok(())
    })
}

fn signing_key_command(settings: Settings, cmd: SigningKeyCommand) -> Result<(), Failure> {
    let ctx = open(settings)?;
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            SigningKeyCommand::Rotate { drop_old } => {
                let kid = ctx.keyring.rotate(&ctx.db, &ctx.settings, drop_old).await?;
                println!("{kid}");
            }
            SigningKeyCommand::List { json } => {
                let keys = ctx.keyring.list_all(&ctx.db).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&keys).map_err(Error::internal)?
                    );
                } else {
                    println!("{:<44} {:<12} {:<12} ACTIVE", "KID", "CREATED", "RETIRE_AT");
                    for k in keys {
                        println!(
                            "{:<44} {:<12} {:<12} {}",
                            k.kid,
                            k.created_at,
                            k.retire_at
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "-".into()),
                            k.active
                        );
                    }
                }
            }
        }
        Ok(())
    })
}

fn key_command(settings: Settings, cmd: KeyCommand) -> Result<(), Failure> {
    use services::keys::{self, Actor, KeyKind, KeyMode, ListFilter, NewKey};
    let ctx = open(settings)?;
    let rt = runtime()?;
    let operator = Actor::operator();
    rt.block_on(async {
        match cmd {
            KeyCommand::Create {
                user,
                name,
                mode,
                plan,
                tenant,
                public,
                expires_in,
            } => {
                let expires_at = expires_in
                    .map(|s| crate::store::now().saturating_add(i64::try_from(s).unwrap_or(i64::MAX)));
                let new = NewKey {
                    name,
                    user: Some(Username::parse(&user)?),
                    mode: Some(KeyMode::parse(&mode)?),
                    plan,
                    expires_at,
                    scopes: Vec::new(),
                    tenant: tenant
                        .as_deref()
                        .map(services::types::TenantId::parse)
                        .transpose()?,
                    kind: Some(if public {
                        KeyKind::Public
                    } else {
                        KeyKind::Secret
                    }),
                };
                let key = keys::create(&ctx, &operator, new).await?;
                println!("{}", key.secret.expose());
            }
            KeyCommand::List { user, json } => {
                let filter = ListFilter {
                    user: user.as_deref().map(Username::parse).transpose()?,
                    all_users: true,
                };
                let list = keys::list(&ctx, &operator, filter).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&list).map_err(Error::internal)?
                    );
                } else {
                    println!("ID     USER             NAME                 KEY                MODE  PLAN        EXPIRES");
                    for k in list {
                        println!(
                            "{:<6} {:<16} {:<20} {:<18} {:<5} {:<11} {}",
                            k.id,
                            k.username,
                            k.name,
                            k.masked,
                            k.mode,
                            k.plan,
                            k.expires_at.map_or("-".to_owned(), |e| e.to_string())
                        );
                    }
                }
            }
            KeyCommand::Revoke { id } => {
                let k = keys::revoke(&ctx, &operator, id).await?;
                println!("{}", k.id);
            }
        }
        Ok::<(), Failure>(())
    })
}

fn serve(settings: Settings) -> Result<(), Failure> {
    let rt = runtime()?;
    rt.block_on(async move {
        let dev = settings.dev;
        let ctx = tokio::task::spawn_blocking(move || Ctx::open(settings))
            .await
            .map_err(Error::internal)??;
        if dev {
            let sandbox = services::dev::seed(&ctx).await?;
            print_sandbox(&ctx, &sandbox);
        }
        let app = Application::build_with(ctx.clone()).await?;
        tracing::info!(port = app.port(), bind = %ctx.settings.bind, dev, "gatehouse listening");
        app.run_until_stopped().await.map_err(Error::internal)?;
        tracing::info!("gatehouse stopped");
        Ok(())
    })
}

fn print_sandbox(ctx: &Ctx, s: &services::dev::Sandbox) {
    let url = ctx.settings.public_url.trim_end_matches('/');
    println!("Gatehouse dev sandbox — NOT for production");
    println!("  URL:          {url}");
    println!("  data dir:     {}", ctx.settings.data_dir.display());
    println!("  admin user:   {}", s.admin);
    match &s.password {
        Some(pw) => println!("  password:     {pw}   (shown once; change it with `gatehouse user passwd admin --password-stdin`)"),
        None => println!("  password:     (set on the first run; reset with `gatehouse user passwd admin --password-stdin`)"),
    }
    println!("  demo tenant:  {}", s.tenant_id);
    if let Some(k) = &s.tenant_private_key {
        println!("  tenant key:   {k}   (shown once; sign in at {url}/login with it)");
    }
    for k in &s.api_keys {
        println!("  API key:      {k}");
    }
    println!(
        "  mail outbox:  {}",
        ctx.settings.data_dir.join("outbox").display()
    );
}
