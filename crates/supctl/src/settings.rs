//! Where supctl finds the services and its credentials: flags, then the environment, then
//! `~/.config/supctl/config.toml`, then the development defaults of `make run`.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context, bail};
use clap::Args;
use serde::Deserialize;
use supervision_kit::{
    Bureau, Role,
    auth::{TokenIssuer, TokenRequest},
};
use tonic::{
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::{Channel, Endpoint},
};

use crate::output::Format;

/// The development key `make run` creates.
pub const DEV_PRIVATE_KEY: &str = "data/dev-keys/token-private.pem";

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Output format.
    #[arg(long, global = true, value_enum, env = "SUPCTL_OUTPUT", default_value = "table")]
    pub output: Format,
    /// Registry endpoint.
    #[arg(long, global = true, env = "SUPCTL_REGISTRY")]
    pub registry: Option<String>,
    /// Recruitment endpoint.
    #[arg(long, global = true, env = "SUPCTL_RECRUITMENT")]
    pub recruitment: Option<String>,
    /// Dispatch endpoint.
    #[arg(long, global = true, env = "SUPCTL_DISPATCH")]
    pub dispatch: Option<String>,
    /// Finance endpoint.
    #[arg(long, global = true, env = "SUPCTL_FINANCE")]
    pub finance: Option<String>,
    /// Bearer token for the calls.
    #[arg(long, global = true, env = "SUPCTL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Private key that signs tokens (`token issue`, and a short-lived token when none is given).
    #[arg(long, global = true, env = "SUPCTL_PRIVATE_KEY_FILE")]
    pub private_key_file: Option<PathBuf>,
    /// Role of the short-lived token supctl signs itself when it has a key but no token.
    #[arg(long = "as", global = true, env = "SUPCTL_AS", default_value = "CITY_ADMIN")]
    pub act_as: String,
    /// Config file (default `~/.config/supctl/config.toml`).
    #[arg(long, global = true, env = "SUPCTL_CONFIG")]
    pub config: Option<PathBuf>,
    /// Seconds each call may take.
    #[arg(long, global = true, env = "SUPCTL_TIMEOUT", default_value_t = 30)]
    pub timeout: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    token: Option<String>,
    private_key_file: Option<PathBuf>,
    audience: Option<String>,
    issuer: Option<String>,
    #[serde(default)]
    endpoints: FileEndpoints,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEndpoints {
    registry: Option<String>,
    recruitment: Option<String>,
    dispatch: Option<String>,
    finance: Option<String>,
}

/// The four services in the order supctl reports them.
pub const SERVICES: [&str; 4] = ["registry", "recruitment", "dispatch", "finance"];

#[derive(Debug)]
pub struct Settings {
    pub endpoints: [(&'static str, String); 4],
    token: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub audience: String,
    pub issuer: String,
    act_as: String,
    timeout: Duration,
}

impl Settings {
    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Self> {
        let file = load_file(args.config.as_ref())?;
        let pick = |flag: &Option<String>, from_file: &Option<String>, port: u16| {
            flag.clone().or_else(|| from_file.clone()).unwrap_or_else(|| format!("http://127.0.0.1:{port}"))
        };
        let endpoints = [
            ("registry", pick(&args.registry, &file.endpoints.registry, 50051)),
            ("recruitment", pick(&args.recruitment, &file.endpoints.recruitment, 50052)),
            ("dispatch", pick(&args.dispatch, &file.endpoints.dispatch, 50053)),
            ("finance", pick(&args.finance, &file.endpoints.finance, 50054)),
        ];
        let private_key_file = args
            .private_key_file
            .clone()
            .or(file.private_key_file)
            .or_else(|| Some(PathBuf::from(DEV_PRIVATE_KEY)).filter(|p| p.exists()));
        Ok(Self {
            endpoints,
            token: args.token.clone().or(file.token),
            private_key_file,
            audience: file.audience.unwrap_or_else(|| "supervision".into()),
            issuer: file.issuer.unwrap_or_else(|| "supervision".into()),
            act_as: args.act_as.clone(),
            timeout: Duration::from_secs(args.timeout),
        })
    }

    pub fn endpoint(&self, service: &str) -> anyhow::Result<&str> {
        self.endpoints
            .iter()
            .find(|(name, _)| *name == service)
            .map(|(_, url)| url.as_str())
            .with_context(|| format!("unknown service {service}; one of {}", SERVICES.join(", ")))
    }

    /// A channel to `service` (connected lazily, so an unreachable service fails per call).
    pub fn channel(&self, service: &str) -> anyhow::Result<Channel> {
        let url = self.endpoint(service)?;
        Ok(Endpoint::from_shared(url.to_owned())
            .with_context(|| format!("bad endpoint {url}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(self.timeout)
            .connect_lazy())
    }

    /// A channel to `service` that sends the configured token.
    pub fn authed(&self, service: &str) -> anyhow::Result<InterceptedService<Channel, Bearer>> {
        let token = self.token()?;
        let value: MetadataValue<Ascii> = format!("Bearer {token}").parse().context("the token is not ASCII")?;
        Ok(InterceptedService::new(self.channel(service)?, Bearer(value)))
    }

    /// The configured token, or a 15-minute one signed with the configured private key.
    fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.token {
            return Ok(token.clone());
        }
        let Some(_) = &self.private_key_file else {
            bail!("no token: pass --token, set SUPCTL_TOKEN, or put `token = \"...\"` in ~/.config/supctl/config.toml");
        };
        let role = Role::from_code(&self.act_as).with_context(|| format!("unknown role {}", self.act_as))?;
        if role.is_bureau_scoped() || role == Role::Expert {
            bail!("--as {role} needs a bureau or expert id: issue one with `supctl token issue` and pass --token");
        }
        let request =
            TokenRequest { subject: whoami(), role, bureau: None, expert_id: None, ttl: Duration::from_secs(900) };
        Ok(self.issuer()?.issue(&request, chrono::Utc::now())?)
    }

    pub fn issuer(&self) -> anyhow::Result<TokenIssuer> {
        let path = self.private_key_file.as_ref().context(
            "no private key: pass --private-key-file or set SUPCTL_PRIVATE_KEY_FILE (make run creates data/dev-keys/)",
        )?;
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        Ok(TokenIssuer::from_private_pem(&pem, &self.audience, &self.issuer)?)
    }
}

/// Parses a bureau given as a division code (440705) or a Chinese name (新会区).
pub fn parse_bureau(text: &str) -> anyhow::Result<Bureau> {
    Bureau::ALL
        .into_iter()
        .find(|b| b.division_code() == text || b.chinese_name() == text)
        .with_context(|| format!("unknown bureau {text}; use a division code such as 440705"))
}

fn whoami() -> String {
    std::env::var("USER").unwrap_or_else(|_| "supctl".into())
}

fn load_file(explicit: Option<&PathBuf>) -> anyhow::Result<FileConfig> {
    let path = match explicit {
        Some(p) => p.clone(),
        None => match directories::ProjectDirs::from("", "", "supctl") {
            Some(dirs) => dirs.config_dir().join("config.toml"),
            None => return Ok(FileConfig::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("bad config file {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => Ok(FileConfig::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Adds the bearer token to every call.
#[derive(Debug, Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}
