//! What every handler shares, and who is asking: the gateway's state, the
//! client's address and authentication, kept apart from the router so that
//! handlers never import the module that imports them.

use crate::auth::{Authenticator, Identity};
use crate::config::Config;
use crate::groups::GroupBackend;
use crate::hub::Hub;
use crate::limits::{Budget, ConnLimit, PerIp};
use crate::listener::ClientAddr;
use crate::metrics::Metrics;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// What every handler shares.
pub struct Shared {
    pub config: Config,
    pub hub: Arc<Hub>,
    pub metrics: Arc<Metrics>,
    pub prometheus: PrometheusHandle,
    pub limit: Arc<ConnLimit>,
    /// Cancelled when shutdown starts.
    pub shutdown: CancellationToken,
    pub auth: Authenticator,
    /// New streaming connections, per client address.
    pub connects: PerIp,
    /// POSTs made with user tokens, per client address.
    pub posts: PerIp,
    /// Consumer groups, whichever implementation the engine brings.
    pub groups: Arc<dyn GroupBackend>,
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Bytes of request bodies being read at once.
    pub bodies: Budget,
    /// Held shared by every publish from its shutdown check until the
    /// engine has answered; shutdown takes it exclusively, so once it has,
    /// no acknowledged publish can still be on its way to the hub.
    pub publishing: tokio::sync::RwLock<()>,
}

/// The client's address as the listener saw it, when the router was served
/// by [`crate::app::Gateway::serve`]. (Addresses in `X-Forwarded-For` are not trusted.)
pub type Peer = Option<axum::Extension<axum::extract::ConnectInfo<ClientAddr>>>;

pub fn peer_ip(peer: &Peer) -> Option<std::net::IpAddr> {
    peer.as_ref().map(|p| (p.0).0.0.ip())
}

impl Shared {
    /// Authenticates a request or connection from its headers and query.
    pub fn identify(
        &self,
        headers: &axum::http::HeaderMap,
        query: Option<&str>,
    ) -> Result<Identity, eventwire_protocol::ProtocolError> {
        let token =
            crate::auth::token_from(headers, query, self.config.auth.auth_cookie.as_deref());
        let mut identity = self
            .auth
            .identify(token.as_ref().map(|(t, _)| t.as_str()))?;
        identity.by_cookie =
            self.auth.enforced() && matches!(token, Some((_, crate::auth::TokenFrom::Cookie)));
        Ok(identity)
    }
}
