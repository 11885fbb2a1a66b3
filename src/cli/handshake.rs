//! `gatehouse tenant …` (server side: registers only the public key) and the handshake client
//! commands `login`, `secrets …`, `runs start`, `logout` (talk HTTP to a server).

use std::io::Read;
use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{open, runtime, Failure};
use crate::client;
use crate::config::Settings;
use crate::crypto::handshake::TenantSeed;
use crate::error::Error;
use crate::services;
use crate::services::types::{TenantId, Username};

/// `gatehouse tenant …`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant with a new key pair made here; prints `tenant_id=` and `private_key=`
    /// (shown once: the server keeps only the public key).
    Create {
        /// Display name.
        name: String,
        /// User name of the tenant's owner.
        #[arg(long)]
        owner: Option<String>,
    },
    /// Give an existing tenant without a handshake key (e.g. `default`) a new key pair;
    /// prints `private_key=` once.
    SetKey {
        /// Tenant id or slug.
        tenant: String,
    },
    /// List tenants.
    List,
}

/// `gatehouse secrets …` (needs `gatehouse login`).
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Store a secret; the value is read from standard input.
    Set {
        /// Secret name.
        name: String,
    },
    /// Print a secret's value.
    Get {
        /// Secret name.
        name: String,
    },
    /// List secret names.
    List,
    /// Delete a secret.
    Rm {
        /// Secret name.
        name: String,
    },
}

/// `gatehouse runs …` (needs `gatehouse login`).
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Start a run; prints `run_id=`, `session=dst_run_…` and `expires_at=`.
    Start {
        /// Workflow name.
        workflow: String,
    },
    /// Print a run's callbacks as JSON.
    Events {
        /// Run id.
        run_id: String,
    },
}

/// Options of `gatehouse login`.
#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The server's URL, e.g. https://auth.example.com.
    #[arg(long)]
    pub server: String,
    /// Tenant id (`ten_…`).
    #[arg(long)]
    pub tenant: String,
    /// File (mode 0600) holding the API key; default: $GATEHOUSE_API_KEY.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// File (mode 0600) holding the tenant private key `tsk_…`; default: $GATEHOUSE_TENANT_KEY.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
}

pub(super) fn tenant_command(settings: Settings, cmd: TenantCommand) -> Result<(), Failure> {
    let ctx = open(settings)?;
    let rt = runtime()?;
    rt.block_on(async {
        match cmd {
            TenantCommand::Create { name, owner } => {
                let owner_id = match owner {
                    Some(u) => Some(
                        services::users::by_username(&ctx, &Username::parse(&u)?)
                            .await?
                            .id,
                    ),
                    None => None,
                };
                // The seed is made here and never leaves this process: only its public key is stored.
                let seed = TenantSeed::generate();
                let created =
                    services::handshake::create_tenant(&ctx, &name, owner_id, seed.static_public())
                        .await?;
                println!("tenant_id={}", created.tenant.id);
                println!("private_key={}", seed.encode().expose());
            }
            TenantCommand::SetKey { tenant } => {
                let t = services::tenants::find(&ctx, &tenant).await?;
                let seed = TenantSeed::generate();
                services::handshake::register_key(
                    &ctx,
                    &TenantId::parse(&t.id)?,
                    seed.static_public(),
                )
                .await?;
                println!("tenant_id={}", t.id);
                println!("private_key={}", seed.encode().expose());
            }
            TenantCommand::List => {
                for t in services::tenants::list(&ctx).await? {
                    println!("{}\t{}\t{}", t.id, t.slug, t.name);
                }
            }
        }
        Ok(())
    })
}

pub(super) fn login(args: LoginArgs) -> Result<(), Failure> {
    let api_key = client::secret_from("GATEHOUSE_API_KEY", args.api_key_file.as_deref(), "API key")
        .map_err(usage)?;
    let tsk = client::secret_from(
        "GATEHOUSE_TENANT_KEY",
        args.key_file.as_deref(),
        "tenant private key",
    )
    .map_err(usage)?;
    let seed = TenantSeed::parse(tsk.expose()).map_err(usage)?;
    let tenant = TenantId::parse(args.tenant.trim()).map_err(usage)?;
    let rt = runtime()?;
    let s = rt.block_on(client::login(
        &args.server,
        tenant.as_str(),
        &api_key,
        &seed,
    ))?;
    println!("tenant_id={}", s.tenant_id);
    println!("expires_at={}", s.expires_at);
    Ok(())
}

fn usage(e: Error) -> Failure {
    Failure {
        code: 2,
        message: e.public_message(),
    }
}

fn secret_path(name: &str) -> Result<String, Failure> {
    services::secrets::check_name(name).map_err(usage)?;
    Ok(format!("/api/secrets/{name}"))
}

pub(super) fn secrets(tenant: Option<String>, cmd: SecretsCommand) -> Result<(), Failure> {
    use reqwest::Method;
    let rt = runtime()?;
    let t = tenant.as_deref();
    rt.block_on(async {
        match cmd {
            SecretsCommand::Set { name } => {
                let path = secret_path(&name)?;
                let mut value = String::new();
                std::io::stdin()
                    .read_to_string(&mut value)
                    .map_err(|e| Failure {
                        code: 1,
                        message: format!("cannot read standard input: {e}"),
                    })?;
                let value = value.strip_suffix('\n').unwrap_or(&value).to_owned();
                client::call(t, Method::PUT, &path, Some(json!({ "value": value }))).await?;
                println!("{name}");
            }
            SecretsCommand::Get { name } => {
                let v = client::call(t, Method::GET, &secret_path(&name)?, None).await?;
                println!("{}", v["value"].as_str().unwrap_or_default());
            }
            SecretsCommand::List => {
                let v = client::call(t, Method::GET, "/api/secrets", None).await?;
                for s in v["secrets"].as_array().into_iter().flatten() {
                    println!("{}", s["name"].as_str().unwrap_or_default());
                }
            }
            SecretsCommand::Rm { name } => {
                client::call(t, Method::DELETE, &secret_path(&name)?, None).await?;
                println!("{name}");
            }
        }
        Ok(())
    })
}

pub(super) fn runs(tenant: Option<String>, cmd: RunsCommand) -> Result<(), Failure> {
    use reqwest::Method;
    let rt = runtime()?;
    let t = tenant.as_deref();
    rt.block_on(async {
        match cmd {
            RunsCommand::Start { workflow } => {
                let v = client::call(
                    t,
                    Method::POST,
                    "/api/runs",
                    Some(json!({ "workflow": workflow })),
                )
                .await?;
                println!("run_id={}", v["run_id"].as_str().unwrap_or_default());
                println!("session={}", v["session"].as_str().unwrap_or_default());
                println!("expires_at={}", v["expires_at"]);
            }
            RunsCommand::Events { run_id } => {
                if !run_id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_')
                {
                    return Err(usage(Error::bad_request(
                        "run id looks like run_0123456789abcdef",
                    )));
                }
                let v = client::call(t, Method::GET, &format!("/api/runs/{run_id}/events"), None)
                    .await?;
                println!(
                    "{}",
                    serde_json::to_string_pretty(&v).map_err(Error::internal)?
                );
            }
        }
        Ok(())
    })
}

pub(super) fn logout(tenant: Option<String>) -> Result<(), Failure> {
    let rt = runtime()?;
    let t = rt.block_on(client::logout(tenant.as_deref()))?;
    println!("tenant_id={t}");
    Ok(())
}

pub(super) fn rotate_key(tenant: Option<String>) -> Result<(), Failure> {
    let rt = runtime()?;
    let seed = TenantSeed::generate();
    let v = rt.block_on(client::call(
        tenant.as_deref(),
        reqwest::Method::POST,
        "/api/session/rotate-key",
        Some(json!({
            "public_key": crate::crypto::b64(&seed.static_public()),
            "wrapping_key": crate::crypto::b64(seed.wrapping_key().bytes()),
        })),
    ));
    v?;
    let s = client::State::load()?.session(tenant.as_deref())?;
    println!("tenant_id={}", s.tenant_id);
    println!("private_key={}", seed.encode().expose());
    Ok(())
}
