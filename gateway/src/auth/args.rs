//! Authentication flags (flattened into the gateway's `Config`), and turning
//! them into an [`Authenticator`]: keys are read once, at startup.

use super::{Authenticator, Key};
use clap::{Args, ValueEnum};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::path::PathBuf;

/// The algorithm of a public key. Chosen by configuration, never by tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl KeyAlgorithm {
    fn algorithm(self) -> Algorithm {
        match self {
            KeyAlgorithm::Rs256 => Algorithm::RS256,
            KeyAlgorithm::EdDsa => Algorithm::EdDSA,
        }
    }
}

#[derive(Clone, Default, Args)]
pub struct AuthArgs {
    /// HS256 shared secret for browser tokens (at least 32 bytes).
    #[arg(long, env = "EVENTWIRE_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// PEM file with a public key (RS256 or EdDSA, see --jwt-algorithm).
    #[arg(long, env = "EVENTWIRE_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,

    /// Local JWKS file with public keys (RS256 or EdDSA, see --jwt-algorithm).
    #[arg(long, env = "EVENTWIRE_JWT_JWKS")]
    pub jwt_jwks: Option<PathBuf>,

    /// The algorithm of --jwt-public-key and --jwt-jwks keys.
    #[arg(long, env = "EVENTWIRE_JWT_ALGORITHM", value_enum)]
    pub jwt_algorithm: Option<KeyAlgorithm>,

    /// Required `aud` claim.
    #[arg(long, env = "EVENTWIRE_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Required `iss` claim.
    #[arg(long, env = "EVENTWIRE_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Also read the token from this cookie.
    #[arg(long, env = "EVENTWIRE_AUTH_COOKIE")]
    pub auth_cookie: Option<String>,

    /// Patterns clients without a token may subscribe to (default: none once auth is on).
    #[arg(long, env = "EVENTWIRE_ANONYMOUS_SUBSCRIBE", value_delimiter = ',')]
    pub anonymous_subscribe: Vec<String>,

    /// Topics (patterns) clients without a token may publish to (default: none).
    #[arg(long, env = "EVENTWIRE_ANONYMOUS_PUBLISH", value_delimiter = ',')]
    pub anonymous_publish: Vec<String>,

    /// API keys for service-to-service publishing (`Authorization: Bearer <key>`); full rights.
    #[arg(
        long = "api-key",
        env = "EVENTWIRE_API_KEYS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub api_keys: Vec<String>,

    /// Allow listening on a non-loopback address with no authentication.
    #[arg(long, env = "EVENTWIRE_INSECURE")]
    pub insecure: bool,
}

/// Secrets never reach a log line, even through `{:?}`.
impl std::fmt::Debug for AuthArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthArgs")
            .field(
                "jwt_secret",
                &self.jwt_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("jwt_public_key", &self.jwt_public_key)
            .field("jwt_jwks", &self.jwt_jwks)
            .field("jwt_algorithm", &self.jwt_algorithm)
            .field("jwt_audience", &self.jwt_audience)
            .field("jwt_issuer", &self.jwt_issuer)
            .field("auth_cookie", &self.auth_cookie)
            .field("anonymous_subscribe", &self.anonymous_subscribe)
            .field("anonymous_publish", &self.anonymous_publish)
            .field("api_keys", &self.api_keys.len())
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl AuthArgs {
    /// Builds the authenticator; errors name the flag at fault.
    pub fn authenticator(&self) -> Result<Authenticator, String> {
        let mut keys = Vec::new();
        if let Some(secret) = &self.jwt_secret {
            if secret.len() < 32 {
                return Err("--jwt-secret must be at least 32 bytes".into());
            }
            keys.push(Key {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
                kid: None,
            });
        }
        let needs_alg = || {
            self.jwt_algorithm
                .map(KeyAlgorithm::algorithm)
                .ok_or_else(|| "--jwt-algorithm (RS256 or EdDSA) is required with --jwt-public-key or --jwt-jwks".to_string())
        };
        if let Some(path) = &self.jwt_public_key {
            let alg = needs_alg()?;
            let pem = std::fs::read(path)
                .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
            let key = match alg {
                Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                _ => DecodingKey::from_ed_pem(&pem),
            }
            .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
            keys.push(Key {
                algorithm: alg,
                key,
                kid: None,
            });
        }
        if let Some(path) = &self.jwt_jwks {
            let alg = needs_alg()?;
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("--jwt-jwks {}: {e}", path.display()))?;
            let set: JwkSet = serde_json::from_str(&text)
                .map_err(|e| format!("--jwt-jwks {}: {e}", path.display()))?;
            for jwk in &set.keys {
                let key = DecodingKey::from_jwk(jwk)
                    .map_err(|e| format!("--jwt-jwks {}: {e}", path.display()))?;
                keys.push(Key {
                    algorithm: alg,
                    key,
                    kid: jwk.common.key_id.clone(),
                });
            }
        }
        Ok(Authenticator::new(keys, self.api_keys.clone())
            .with_audience(self.jwt_audience.clone())
            .with_issuer(self.jwt_issuer.clone())
            .with_anonymous(&self.anonymous_subscribe, &self.anonymous_publish))
    }
}
