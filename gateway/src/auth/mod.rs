//! Who may subscribe to and emit what: JWT verification, rights with
//! `{sub}`, the anonymous policy, and API keys for services.
//!
//! Accepted algorithms come from configuration, one per key, never from a
//! token's header: a token signed with HS256 using an RSA public key as the
//! secret is refused because HS256 is not an algorithm of that key.

mod args;

pub use args::{AuthArgs, KeyAlgorithm};
use eventwire_protocol::{ErrorCode, Pattern, ProtocolError};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde::Deserialize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest a token's expiry timer runs: about ten years.
pub const MAX_TOKEN_TIMER: Duration = Duration::from_secs(10 * 365 * 86_400);

/// The `source` stamped on events published without a token (when the
/// anonymous policy allows publishing), whatever `source` they claim.
pub const ANONYMOUS_SOURCE: &str = "eventwire/anonymous";

/// What a client may subscribe to (by pattern containment) and publish,
/// and which consumer groups it may work in (patterns of group names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    pub subscribe: Vec<Pattern>,
    pub publish: Vec<Pattern>,
    pub consume: Vec<Pattern>,
}

impl Rights {
    /// Everything: the gateway without any auth configured.
    pub fn all() -> Rights {
        let every = Pattern::parse(">").expect("valid");
        Rights {
            subscribe: vec![every.clone()],
            publish: vec![every.clone()],
            consume: vec![every],
        }
    }

    /// A subscription is allowed only when one granted pattern covers all of
    /// it. A pattern that merely overlaps the rights is refused, not
    /// narrowed: silently delivering a subset would look like missing events.
    pub fn may_subscribe(&self, pattern: &Pattern) -> bool {
        self.subscribe.iter().any(|g| g.covers(pattern))
    }

    pub fn may_publish(&self, topic: &str) -> bool {
        self.publish.iter().any(|g| g.matches(topic))
    }

    /// Group names are topics, so `consume` patterns match them the same way.
    pub fn may_consume(&self, group: &str) -> bool {
        self.consume.iter().any(|g| g.matches(group))
    }

    /// Parses granted patterns, replacing `{sub}` with the token's subject.
    /// A pattern that does not parse after substitution, or that uses `{sub}`
    /// when the subject is not a plain topic segment, grants nothing: a
    /// subject such as `a.>` must never widen rights.
    fn grant(patterns: &[String], sub: Option<&str>) -> Vec<Pattern> {
        let segment_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        patterns
            .iter()
            .filter_map(|p| {
                let text = if p.contains("{sub}") {
                    p.replace("{sub}", sub.filter(|s| segment_ok(s))?)
                } else {
                    p.clone()
                };
                Pattern::parse(&text).ok()
            })
            .collect()
    }
}

/// The outcome of authentication for one connection or request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The token's subject; `None` for anonymous clients and API keys.
    pub sub: Option<String>,
    pub rights: Rights,
    /// Unix seconds after which the token is no longer valid.
    pub expires_at: Option<u64>,
    /// No token was presented where the gateway enforces auth: a refusal is
    /// then `unauthorized` (log in) rather than `forbidden` (not allowed).
    pub anonymous: bool,
    /// The token came from the auth cookie, which a browser attaches to
    /// requests that other sites' pages make: see [`crate::origin`].
    pub by_cookie: bool,
}

impl Identity {
    /// The `source` a browser's emits get, so nobody can emit as someone
    /// else: the subject for a token, [`ANONYMOUS_SOURCE`] without one.
    /// `None` keeps the producer's (open gateway, API keys).
    pub fn source(&self) -> Option<String> {
        match &self.sub {
            Some(sub) => Some(sub.clone()),
            None if self.anonymous => Some(ANONYMOUS_SOURCE.to_owned()),
            None => None,
        }
    }

    /// The error for something these rights do not allow.
    pub fn refusal(&self, what: std::fmt::Arguments<'_>) -> ProtocolError {
        if self.anonymous {
            ProtocolError::new(ErrorCode::Unauthorized, format!("{what} requires a token"))
        } else {
            ProtocolError::new(
                ErrorCode::Forbidden,
                format!("{what} is not allowed by this token"),
            )
        }
    }

    /// Checks every pattern of a subscription or history read against the
    /// subscribe rights. SSE, WebSocket and `GET /v1/events` all call this,
    /// so reading history is exactly as private as subscribing.
    pub fn check_subscribe<'p>(
        &self,
        patterns: impl IntoIterator<Item = &'p Pattern>,
    ) -> Result<(), ProtocolError> {
        match patterns.into_iter().find(|p| !self.rights.may_subscribe(p)) {
            Some(p) => Err(self.refusal(format_args!("subscribing to {p}"))),
            None => Ok(()),
        }
    }

    /// Time until the token expires (zero when it already has), for the
    /// timers that end a stream. A validly signed token may carry any `exp`,
    /// even near `u64::MAX`, and an `Instant` that far away overflows: the
    /// time is capped at [`MAX_TOKEN_TIMER`], after which the connection
    /// must present a token again.
    pub fn time_left(&self) -> Option<Duration> {
        self.expires_at
            .map(|exp| Duration::from_secs(exp.saturating_sub(now_secs())).min(MAX_TOKEN_TIMER))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A verification key and the one algorithm it is used with.
pub struct Key {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
    /// When set, only tokens whose header names this `kid` use this key.
    pub kid: Option<String>,
}

/// How the gateway authenticates, built once from configuration.
#[derive(Default)]
pub struct Authenticator {
    keys: Vec<Key>,
    audience: Option<String>,
    issuer: Option<String>,
    anonymous: Rights,
    api_keys: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: Option<u64>,
    #[serde(default)]
    eventwire: RightsClaim,
}

#[derive(Deserialize, Default)]
struct RightsClaim {
    #[serde(default)]
    subscribe: Vec<String>,
    #[serde(default)]
    publish: Vec<String>,
    #[serde(default)]
    consume: Vec<String>,
}

fn unauthorized(message: &str) -> ProtocolError {
    ProtocolError::new(ErrorCode::Unauthorized, message)
}

impl Authenticator {
    /// An authenticator over `keys`. With no keys and no API keys the gateway
    /// is open: every client has every right.
    pub fn new(keys: Vec<Key>, api_keys: Vec<String>) -> Authenticator {
        Authenticator {
            keys,
            api_keys,
            ..Authenticator::default()
        }
    }

    pub fn with_audience(mut self, audience: Option<String>) -> Self {
        self.audience = audience;
        self
    }

    pub fn with_issuer(mut self, issuer: Option<String>) -> Self {
        self.issuer = issuer;
        self
    }

    /// What clients without a token may do (default: nothing).
    pub fn with_anonymous(mut self, subscribe: &[String], publish: &[String]) -> Self {
        self.anonymous = Rights {
            subscribe: Rights::grant(subscribe, None),
            publish: Rights::grant(publish, None),
            consume: Vec::new(),
        };
        self
    }

    /// Whether any verification is configured. When not, the gateway is open.
    pub fn enforced(&self) -> bool {
        !self.keys.is_empty() || !self.api_keys.is_empty()
    }

    /// Authenticates one request or connection from its token, if any.
    pub fn identify(&self, token: Option<&str>) -> Result<Identity, ProtocolError> {
        if !self.enforced() {
            return Ok(Identity {
                sub: None,
                rights: Rights::all(),
                expires_at: None,
                anonymous: false,
                by_cookie: false,
            });
        }
        let Some(token) = token.filter(|t| !t.is_empty()) else {
            return Ok(Identity {
                sub: None,
                rights: self.anonymous.clone(),
                expires_at: None,
                anonymous: true,
                by_cookie: false,
            });
        };
        if self
            .api_keys
            .iter()
            .any(|k| constant_time_eq(k.as_bytes(), token.as_bytes()))
        {
            return Ok(Identity {
                sub: None,
                rights: Rights::all(),
                expires_at: None,
                anonymous: false,
                by_cookie: false,
            });
        }
        self.verify(token)
    }

    fn verify(&self, token: &str) -> Result<Identity, ProtocolError> {
        let header =
            decode_header(token).map_err(|_| unauthorized("the token is not a well-formed JWT"))?;
        let candidates: Vec<&Key> = self
            .keys
            .iter()
            .filter(|k| k.algorithm == header.alg)
            .filter(|k| k.kid.is_none() || k.kid == header.kid)
            .collect();
        if candidates.is_empty() {
            return Err(unauthorized(
                "the token's algorithm or key id is not accepted by this gateway",
            ));
        }
        let mut last = unauthorized("the token's signature is not valid");
        for key in candidates {
            let mut v = Validation::new(key.algorithm);
            v.validate_nbf = true;
            v.leeway = 5;
            // With an audience or issuer configured, a token without that
            // claim is refused: jsonwebtoken checks a claim's value only
            // when the claim is present, or listed as required.
            let mut required = vec!["exp", "sub"];
            match &self.audience {
                Some(aud) => {
                    v.set_audience(&[aud]);
                    required.push("aud");
                }
                None => v.validate_aud = false,
            }
            if let Some(iss) = &self.issuer {
                v.set_issuer(&[iss]);
                required.push("iss");
            }
            v.set_required_spec_claims(&required);
            match decode::<Claims>(token, &key.key, &v) {
                Ok(data) => {
                    let sub = data.claims.sub;
                    return Ok(Identity {
                        rights: Rights {
                            subscribe: Rights::grant(
                                &data.claims.eventwire.subscribe,
                                sub.as_deref(),
                            ),
                            publish: Rights::grant(&data.claims.eventwire.publish, sub.as_deref()),
                            consume: Rights::grant(&data.claims.eventwire.consume, sub.as_deref()),
                        },
                        sub,
                        expires_at: data.claims.exp,
                        anonymous: false,
                        by_cookie: false,
                    });
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::ExpiredSignature => {
                            ProtocolError::new(ErrorCode::TokenExpired, "the token has expired")
                        }
                        K::ImmatureSignature => unauthorized("the token is not valid yet (nbf)"),
                        K::InvalidAudience => unauthorized("the token is for another audience"),
                        K::InvalidIssuer => unauthorized("the token is from another issuer"),
                        K::MissingRequiredClaim(claim) => ProtocolError::new(
                            ErrorCode::Unauthorized,
                            format!("the token lacks the `{claim}` claim"),
                        ),
                        _ => unauthorized("the token's signature is not valid"),
                    };
                }
            }
        }
        Err(last)
    }
}

/// Compares secrets without an early exit, so timing does not leak a prefix.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Where a request's token was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenFrom {
    Header,
    Cookie,
    Query,
}

/// Finds the token a request carries: `Authorization: Bearer`, then the
/// configured cookie, then the `access_token` query parameter (browsers
/// cannot set headers on `EventSource` and `WebSocket`).
pub fn token_from(
    headers: &axum::http::HeaderMap,
    query: Option<&str>,
    cookie: Option<&str>,
) -> Option<(String, TokenFrom)> {
    if let Some(v) = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        && let Some(t) = v
            .strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    {
        return Some((t.trim().to_owned(), TokenFrom::Header));
    }
    if let Some(name) = cookie {
        for v in headers.get_all(axum::http::header::COOKIE) {
            let Ok(v) = v.to_str() else { continue };
            for part in v.split(';') {
                if let Some((k, val)) = part.trim().split_once('=')
                    && k == name
                {
                    return Some((val.to_owned(), TokenFrom::Cookie));
                }
            }
        }
    }
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "access_token")
        .map(|(_, v)| (v.into_owned(), TokenFrom::Query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const SECRET: &[u8] = b"test-secret-of-enough-length-32b";

    fn hs256() -> Authenticator {
        Authenticator::new(
            vec![Key {
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(SECRET),
                kid: None,
            }],
            vec!["svc-key".into()],
        )
        .with_audience(Some("eventwire".into()))
        .with_anonymous(&["public.>".into()], &[])
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap()
    }

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap()
    }

    #[test]
    fn rights_come_from_the_claim_with_sub_substituted() {
        let id = hs256()
            .identify(Some(&token(json!({
                "sub": "u1", "exp": now_secs() + 60, "aud": "eventwire",
                "eventwire": {"subscribe": ["user.{sub}.>", "news.*"], "publish": ["ui.>"]}
            }))))
            .unwrap();
        assert_eq!(id.sub.as_deref(), Some("u1"));
        assert!(id.rights.may_subscribe(&p("user.u1.>")));
        assert!(id.rights.may_subscribe(&p("user.u1.inbox")));
        assert!(!id.rights.may_subscribe(&p("user.u2.inbox")));
        assert!(
            !id.rights.may_subscribe(&p("user.*.inbox")),
            "overlap is refused, not narrowed"
        );
        assert!(!id.rights.may_subscribe(&p("news.>")));
        assert!(id.rights.may_publish("ui.clicked"));
        assert!(!id.rights.may_publish("order.placed"));
        assert!(id.rights.consume.is_empty(), "no consume claim, no groups");
        assert!(id.time_left().is_some_and(|s| s <= Duration::from_secs(60)));
    }

    #[test]
    fn a_subject_cannot_widen_its_rights() {
        let id = hs256()
            .identify(Some(&token(json!({
                "sub": "x.>", "exp": now_secs() + 60, "aud": "eventwire",
                "eventwire": {"subscribe": ["user.{sub}"], "publish": []}
            }))))
            .unwrap();
        assert!(id.rights.subscribe.is_empty());
    }

    #[test]
    fn bad_tokens_are_refused_with_codes() {
        let a = hs256();
        let code = |t: &str| a.identify(Some(t)).unwrap_err().code;
        let good = json!({"sub": "u1", "exp": now_secs() + 60, "aud": "eventwire"});
        let mut expired = good.clone();
        expired["exp"] = json!(now_secs() - 3600);
        assert_eq!(code(&token(expired)), ErrorCode::TokenExpired);
        let mut early = good.clone();
        early["nbf"] = json!(now_secs() + 3600);
        assert_eq!(code(&token(early)), ErrorCode::Unauthorized);
        let mut other = good.clone();
        other["aud"] = json!("someone-else");
        assert_eq!(code(&token(other)), ErrorCode::Unauthorized);
        let mut no_sub = good.clone();
        no_sub.as_object_mut().unwrap().remove("sub");
        assert_eq!(code(&token(no_sub)), ErrorCode::Unauthorized);
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &good,
            &EncodingKey::from_secret(b"another-secret-of-32-bytes-long!"),
        )
        .unwrap();
        assert_eq!(code(&forged), ErrorCode::Unauthorized);
        // alg "none": header {"alg":"none"} and no signature.
        let none = format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"JWT"}"#),
            b64(serde_json::to_vec(&good).unwrap().as_slice())
        );
        assert_eq!(code(&none), ErrorCode::Unauthorized);
        assert_eq!(code("not-a-jwt"), ErrorCode::Unauthorized);
        // Messages never repeat the token.
        let e = a.identify(Some(&token(good.clone())[..20])).unwrap_err();
        assert!(!e.message.contains(&token(good)[..20]));
    }

    fn b64(bytes: &[u8]) -> String {
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |acc, &b| (acc << 8) | b as u32) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn anonymous_api_keys_and_open_mode() {
        let a = hs256();
        let anon = a.identify(None).unwrap();
        assert!(anon.rights.may_subscribe(&p("public.news")));
        assert!(!anon.rights.may_subscribe(&p("private.x")));
        assert!(!anon.rights.may_publish("public.news"));
        let svc = a.identify(Some("svc-key")).unwrap();
        assert!(svc.rights.may_publish("anything.at.all"));
        let open = Authenticator::default().identify(Some("whatever")).unwrap();
        assert!(open.rights.may_publish("x") && open.rights.may_subscribe(&p(">")));
        assert!(!Authenticator::default().enforced());
    }

    #[test]
    fn tokens_are_found_in_header_cookie_or_query() {
        let mut h = axum::http::HeaderMap::new();
        let found = |h: &axum::http::HeaderMap, q, c| token_from(h, Some(q), c);
        assert_eq!(
            found(&h, "topic=a&access_token=q1", None),
            Some(("q1".into(), TokenFrom::Query))
        );
        h.insert("cookie", "a=b; ew=c1".parse().unwrap());
        assert_eq!(
            found(&h, "access_token=q1", Some("ew")),
            Some(("c1".into(), TokenFrom::Cookie))
        );
        h.insert("authorization", "Bearer h1".parse().unwrap());
        assert_eq!(
            found(&h, "access_token=q1", Some("ew")),
            Some(("h1".into(), TokenFrom::Header))
        );
    }
}

#[cfg(test)]
mod key_files {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header, encode};
    use serde_json::json;

    const ED_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/ed_private.pem");
    const RSA_PRIVATE: &[u8] = include_bytes!("../../tests/fixtures/rsa_private.pem");

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name)
    }

    fn claims() -> serde_json::Value {
        json!({"sub": "u9", "exp": now_secs() + 60, "iss": "idp", "eventwire": {"subscribe": ["a.>"]}})
    }

    #[test]
    fn eddsa_public_key_from_pem_and_issuer_check() {
        let args = AuthArgs {
            jwt_public_key: Some(fixture("ed_public.pem")),
            jwt_algorithm: Some(KeyAlgorithm::EdDsa),
            jwt_issuer: Some("idp".into()),
            ..AuthArgs::default()
        };
        let auth = args.authenticator().unwrap();
        let token = encode(
            &Header::new(Algorithm::EdDSA),
            &claims(),
            &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
        )
        .unwrap();
        assert_eq!(
            auth.identify(Some(&token)).unwrap().sub.as_deref(),
            Some("u9")
        );
        let mut other = claims();
        other["iss"] = json!("someone-else");
        let token = encode(
            &Header::new(Algorithm::EdDSA),
            &other,
            &EncodingKey::from_ed_pem(ED_PRIVATE).unwrap(),
        )
        .unwrap();
        assert_eq!(
            auth.identify(Some(&token)).unwrap_err().code,
            ErrorCode::Unauthorized
        );
    }

    #[test]
    fn jwks_keys_are_chosen_by_kid() {
        // A JWKS holding the fixture RSA key under the id `k1`.
        let dir = std::env::temp_dir().join(format!("ew-jwks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let enc = EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap();
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, Algorithm::RS256).unwrap();
        jwk.common.key_id = Some("k1".into());
        let set = json!({ "keys": [jwk] });
        std::fs::write(dir.join("jwks.json"), set.to_string()).unwrap();
        let args = AuthArgs {
            jwt_jwks: Some(dir.join("jwks.json")),
            jwt_algorithm: Some(KeyAlgorithm::Rs256),
            ..AuthArgs::default()
        };
        let auth = args.authenticator().unwrap();
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some("k1".into());
        let token = encode(&header, &claims(), &enc).unwrap();
        assert!(auth.identify(Some(&token)).is_ok());
        header.kid = Some("k2".into());
        let token = encode(&header, &claims(), &enc).unwrap();
        assert_eq!(
            auth.identify(Some(&token)).unwrap_err().code,
            ErrorCode::Unauthorized,
            "unknown kid"
        );
        assert!(
            AuthArgs {
                jwt_jwks: Some(dir.join("jwks.json")),
                ..AuthArgs::default()
            }
            .authenticator()
            .is_err(),
            "the algorithm must be given"
        );
    }
}
