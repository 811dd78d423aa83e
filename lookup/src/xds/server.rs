//! The gRPC server: `DeltaAggregatedResources` streams for `Secret`s, the
//! node token checked on the first message, and the store's change feed
//! polled so a renewed, withdrawn or new certificate reaches every
//! connected Envoy within `poll` (any replica's writes included).

use super::secrets::{self, Fallback, FALLBACK_NAME, SECRET_TYPE};
use super::session::Session;
use super::TOKEN_KEY;
use crate::certs::Kek;
use crate::store::{Changes, Store};
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use envoy_types::pb::google::protobuf::value::Kind;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::{ReceiverStream, TcpListenerStream};
use tokio_stream::Stream;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// The largest request Envoy may send (a subscribe of many names).
const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct XdsConfig {
    /// SHA-256 of the node token: only the digest is kept. `None`: the
    /// node's credential is its client certificate (`tls` with a client CA).
    pub token_sha256: Option<[u8; 32]>,
    /// TLS on the listener, and with a client CA mutual TLS.
    pub tls: Option<ServerTlsConfig>,
    pub max_secrets_per_node: usize,
    /// How often the store's change feed is read.
    pub poll: Duration,
}

impl XdsConfig {
    pub fn new(token: Option<&str>, max_secrets_per_node: usize, poll: Duration) -> XdsConfig {
        let token_sha256 = token.map(|t| Sha256::digest(t.trim().as_bytes()).into());
        XdsConfig { token_sha256, tls: None, max_secrets_per_node, poll }
    }
}

/// The listener's TLS from PEM: its certificate chain and key, and the CA
/// that client certificates must chain to (then every connection must
/// present one). Checked here, so a bad file stops the start.
pub fn tls_config(cert: &[u8], key: &[u8], client_ca: Option<&[u8]>) -> Result<ServerTlsConfig, String> {
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(cert, key));
    if let Some(ca) = client_ca {
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    tonic::transport::Server::builder().tls_config(tls.clone()).map_err(|e| e.to_string())?;
    Ok(tls)
}

/// Counters, for the log now and `/metrics` later.
#[derive(Debug, Default)]
pub struct XdsStats {
    pub streams: AtomicU64,
    /// Streams refused: no node, or not the token.
    pub refused: AtomicU64,
    pub secrets_sent: AtomicU64,
    pub removed_sent: AtomicU64,
    pub nacks: AtomicU64,
    /// Streams ended by a request that does not decode.
    pub malformed: AtomicU64,
    /// Names dropped to keep a node under `max_secrets_per_node`.
    pub evicted: AtomicU64,
}

#[derive(Debug, Clone)]
enum Changed {
    Names(Arc<Vec<String>>),
    /// The feed was reset: every subscribed name is looked at again.
    All,
}

#[derive(Clone)]
struct Ads {
    store: Store,
    kek: Kek,
    fallback: Fallback,
    config: Arc<XdsConfig>,
    stats: Arc<XdsStats>,
    changes: broadcast::Sender<Changed>,
}

/// Serves on `listener` until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    kek: Kek,
    config: XdsConfig,
    stats: Arc<XdsStats>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let fallback = Fallback::generate()?;
    let (changes, _) = broadcast::channel(1024);
    let watcher = tokio::spawn(watch(store.clone(), changes.clone(), config.poll));
    let ads = Ads { store, kek, fallback, config: Arc::new(config), stats, changes };
    let tls = ads.config.tls.clone();
    let sds = SecretDiscoveryServiceServer::new(ads.clone()).max_decoding_message_size(MAX_MESSAGE);
    let service = AggregatedDiscoveryServiceServer::new(ads).max_decoding_message_size(MAX_MESSAGE);
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(|e| e.to_string())?;
    }
    let served = builder
        .add_service(service)
        .add_service(sds)
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), stop)
        .await;
    watcher.abort();
    served.map_err(|e| e.to_string())
}

/// Reads the change feed from the head on and tells every stream which
/// names changed.
async fn watch(store: Store, tx: broadcast::Sender<Changed>, poll: Duration) {
    let mut seq = loop {
        match store.feed_head().await {
            Ok(h) => break h.seq,
            Err(e) => tracing::warn!(error = %e, "xds: reading the feed head"),
        }
        tokio::time::sleep(poll).await;
    };
    loop {
        tokio::time::sleep(poll).await;
        loop {
            match store.changes_since(seq).await {
                Ok(Changes::Page { seq: next, hosts, certs, .. }) => {
                    if next == seq {
                        break;
                    }
                    seq = next;
                    // A name once: Envoy refuses a response that names one twice.
                    let names: std::collections::BTreeSet<String> = certs.into_iter().chain(hosts).collect();
                    let names: Vec<String> = names.into_iter().collect();
                    if !names.is_empty() {
                        let _ = tx.send(Changed::Names(Arc::new(names)));
                    }
                }
                Ok(Changes::Reset { seq: next }) => {
                    seq = next;
                    let _ = tx.send(Changed::All);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "xds: reading the change feed");
                    break;
                }
            }
        }
    }
}

type Outbound = Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, Status>> + Send>>;
type SotwOutbound = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = SotwOutbound;
    type DeltaAggregatedResourcesStream = Outbound;

    async fn stream_aggregated_resources(
        &self,
        _request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<SotwOutbound>, Status> {
        Err(Status::unimplemented("only the delta protocol is served: set ads_config.api_type: DELTA_GRPC"))
    }

    async fn delta_aggregated_resources(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Outbound>, Status> {
        Ok(self.open(request))
    }
}

/// The same secrets over SDS's own delta service, for an Envoy whose ADS
/// stream belongs to another control plane (an Istio gateway's to istiod):
/// its selector names this service in an `api_config_source`, one stream
/// per secret.
#[tonic::async_trait]
impl SecretDiscoveryService for Ads {
    type DeltaSecretsStream = Outbound;
    type StreamSecretsStream = SotwOutbound;

    async fn delta_secrets(
        &self,
        request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Outbound>, Status> {
        Ok(self.open(request))
    }

    async fn stream_secrets(
        &self,
        _request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<SotwOutbound>, Status> {
        Err(Status::unimplemented("only the delta protocol is served: set api_type: DELTA_GRPC"))
    }

    async fn fetch_secrets(&self, _request: Request<DiscoveryRequest>) -> Result<Response<DiscoveryResponse>, Status> {
        Err(Status::unimplemented("only the delta protocol is served: set api_type: DELTA_GRPC"))
    }
}

type Tx = mpsc::Sender<Result<DeltaDiscoveryResponse, Status>>;

impl Ads {
    /// A delta stream, served by its own task.
    fn open(&self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Response<Outbound> {
        let (tx, rx) = mpsc::channel(16);
        let ads = self.clone();
        tokio::spawn(async move { ads.stream(request.into_inner(), tx).await });
        Response::new(Box::pin(ReceiverStream::new(rx)))
    }

    /// The node's token where one is configured; without one, mutual TLS
    /// has already required a client certificate from the CA.
    fn authorized(&self, node: Option<&Node>) -> bool {
        let Some(expected) = &self.config.token_sha256 else {
            return self.config.tls.is_some();
        };
        let token =
            node.and_then(|n| n.metadata.as_ref()).and_then(|m| m.fields.get(TOKEN_KEY)).and_then(|v| match &v.kind {
                Some(Kind::StringValue(s)) => Some(s.as_str()),
                _ => None,
            });
        match token {
            Some(t) => bool::from(Sha256::digest(t.trim().as_bytes()).as_slice().ct_eq(expected)),
            None => false,
        }
    }

    async fn stream(self, mut inbound: Streaming<DeltaDiscoveryRequest>, tx: Tx) {
        let first = match inbound.message().await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(e) => return self.malformed(&tx, "-", &e).await,
        };
        let node = first.node.as_ref().map(|n| crate::logs::clean(n.id.as_bytes())).unwrap_or_else(|| "-".into());
        if !self.authorized(first.node.as_ref()) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(node, "xds refused: no {TOKEN_KEY} in its metadata, or not the token");
            let _ = tx.send(Err(Status::permission_denied(format!("node metadata {TOKEN_KEY} required")))).await;
            return;
        }
        self.stats.streams.fetch_add(1, Ordering::Relaxed);
        let _open = crate::metrics::Stream::open();
        tracing::info!(node, "xds stream open");
        let mut changes = self.changes.subscribe();
        let mut session = Session::new(self.config.max_secrets_per_node, FALLBACK_NAME);
        let mut nonce = 0u64;
        let mut next = Some(first);
        loop {
            let request = match next.take() {
                Some(r) => r,
                None => tokio::select! {
                    m = inbound.message() => match m {
                        Ok(Some(r)) => r,
                        Ok(None) => break,
                        Err(e) => {
                            self.malformed(&tx, &node, &e).await;
                            break;
                        }
                    },
                    c = changes.recv() => {
                        let names: Vec<String> = match c {
                            Ok(Changed::Names(names)) => names.iter().filter(|n| session.contains(n)).cloned().collect(),
                            // Lagged behind or reset: look at everything again.
                            Ok(Changed::All) | Err(broadcast::error::RecvError::Lagged(_)) => session.names().map(String::from).collect(),
                            Err(broadcast::error::RecvError::Closed) => break,
                        };
                        if !self.respond(&tx, &mut nonce, &names, Vec::new()).await {
                            break;
                        }
                        continue;
                    }
                },
            };
            if !self.handle(&node, request, &mut session, &tx, &mut nonce).await {
                break;
            }
        }
        tracing::info!(node, "xds stream closed");
    }

    /// A request that does not decode ends its stream with
    /// INVALID_ARGUMENT (a broken connection just ends); the server and its
    /// other streams go on.
    async fn malformed(&self, tx: &Tx, node: &str, e: &Status) {
        tracing::info!(node, error = crate::logs::clean(e.message().as_bytes()), "xds stream ended");
        if e.code() != tonic::Code::Unknown && e.code() != tonic::Code::Cancelled {
            self.stats.malformed.fetch_add(1, Ordering::Relaxed);
            let _ = tx.send(Err(Status::invalid_argument(format!("malformed request: {}", e.message())))).await;
        }
    }

    /// False when the stream is gone.
    async fn handle(
        &self,
        node: &str,
        r: DeltaDiscoveryRequest,
        session: &mut Session,
        tx: &Tx,
        nonce: &mut u64,
    ) -> bool {
        if !r.type_url.is_empty() && r.type_url != SECRET_TYPE {
            return true;
        }
        if let Some(e) = &r.error_detail {
            self.stats.nacks.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                node,
                nonce = crate::logs::clean(r.response_nonce.as_bytes()),
                error = crate::logs::clean(e.message.as_bytes()),
                "xds: Envoy rejected a response"
            );
        }
        for name in &r.resource_names_unsubscribe {
            session.unsubscribe(name);
        }
        // An empty subscribe is an ACK, or a wildcard: never every secret.
        let mut evicted = Vec::new();
        let mut wanted: Vec<String> = Vec::new();
        for name in &r.resource_names_subscribe {
            evicted.extend(session.subscribe(name));
            if !wanted.contains(name) {
                wanted.push(name.clone());
            }
        }
        // Pushed out and asked for again in one request: it stays.
        evicted.retain(|n| !wanted.contains(n));
        if !evicted.is_empty() {
            self.stats.evicted.fetch_add(evicted.len() as u64, Ordering::Relaxed);
        }
        self.respond(tx, nonce, &wanted, evicted).await
    }

    /// Sends what `names` resolve to now, plus `removed`; false when the
    /// stream is gone. A name with no certificate (any more) is removed:
    /// Envoy drops it, and the next handshake for it fails.
    async fn respond(&self, tx: &Tx, nonce: &mut u64, names: &[String], mut removed: Vec<String>) -> bool {
        let mut resources: Vec<Resource> = Vec::new();
        for name in names {
            match self.resolve(name).await {
                Ok(Some(r)) => resources.push(r),
                Ok(None) => removed.push(name.clone()),
                // The store is down: say nothing; Envoy keeps what it has.
                Err(e) => {
                    tracing::warn!(secret = crate::logs::clean(name.as_bytes()), error = %e, "xds: reading a secret")
                }
            }
        }
        if resources.is_empty() && removed.is_empty() {
            return true;
        }
        self.stats.secrets_sent.fetch_add(resources.len() as u64, Ordering::Relaxed);
        self.stats.removed_sent.fetch_add(removed.len() as u64, Ordering::Relaxed);
        *nonce += 1;
        let response = DeltaDiscoveryResponse {
            type_url: SECRET_TYPE.to_string(),
            resources,
            removed_resources: removed,
            nonce: nonce.to_string(),
            ..Default::default()
        };
        tx.send(Ok(response)).await.is_ok()
    }

    /// The secret named `name`: the fallback, or an active hostname's
    /// certificate; `None` for anything else (removed: the handshake fails
    /// fast, and nothing is cached in Envoy for a junk name).
    async fn resolve(&self, name: &str) -> Result<Option<Resource>, String> {
        if name == FALLBACK_NAME {
            return Ok(Some(self.fallback.resource()));
        }
        let Ok(host) = crate::dns::canonical(name) else {
            return Ok(None);
        };
        if host != name {
            return Ok(None);
        }
        match self.store.certificate_for(name).await.map_err(|e| e.to_string())? {
            Some(cert) => secrets::certificate(&cert, &self.kek).map(Some),
            None => Ok(None),
        }
    }
}
