//! Tokens for tests of a gateway with auth: HS256 and RS256 keys, claims
//! with the usual rights, and a gateway configured to verify them.

use super::{TestGateway, config, start};
use eventwire_gateway::Config;
use eventwire_gateway::auth::KeyAlgorithm;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes";
pub const RSA_PRIVATE: &[u8] = include_bytes!("../fixtures/rsa_private.pem");
pub const RSA_PUBLIC: &[u8] = include_bytes!("../fixtures/rsa_public.pem");

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A user's claims: a private tree `user.<sub>.>`, `public.>`, and
/// publishing on `ui.>`; expiring `exp_in` seconds from now.
pub fn claims(sub: &str, exp_in: i64) -> Value {
    json!({
        "sub": sub,
        "aud": "eventwire",
        "exp": (now() as i64 + exp_in) as u64,
        "eventwire": {"subscribe": ["user.{sub}.>", "public.>"], "publish": ["ui.>"]}
    })
}

pub fn hs(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

pub fn rs(c: &Value) -> String {
    encode(
        &Header::new(Algorithm::RS256),
        c,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
    )
    .unwrap()
}

/// HS256 and RS256 users (audience `eventwire`), anonymous readers of
/// `public.>`, the API key `svc-key`, and one allowed origin.
pub fn secured_config() -> Config {
    let mut cfg = config();
    cfg.heartbeat = Duration::from_millis(500);
    cfg.cors_origins = vec!["http://good.example".into()];
    let a = &mut cfg.auth;
    a.jwt_secret = Some(SECRET.into());
    let dir = std::env::temp_dir().join(format!("ew-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("rsa_public.pem"), RSA_PUBLIC).unwrap();
    a.jwt_public_key = Some(dir.join("rsa_public.pem"));
    a.jwt_algorithm = Some(KeyAlgorithm::Rs256);
    a.jwt_audience = Some("eventwire".into());
    a.anonymous_subscribe = vec!["public.>".into()];
    a.api_keys = vec!["svc-key".into()];
    cfg
}

pub async fn secured() -> TestGateway {
    start(secured_config()).await
}

/// Publishes with the service API key (full rights).
pub async fn svc_publish(gw: &TestGateway, ty: &str, n: u64) {
    let r = gw
        .http
        .post(gw.url("/v1/events"))
        .bearer_auth("svc-key")
        .body(super::event(ty, n).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}
