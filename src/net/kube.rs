//! The Kubernetes client: kube's configuration and middleware (base URL,
//! authentication, impersonation headers) over a connector of our own, so
//! that every connection sets `TCP_NODELAY` (a request written right after
//! the TLS handshake is otherwise held for the server's delayed ACK), takes
//! the proxy kubectl would take, and a server that does not answer is named
//! in the error within the timeout while the user is told what is awaited.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::TokioExecutor;
use kube::client::{Body, ClientBuilder, ConfigExt};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tower::{BoxError, Service, ServiceBuilder};
use tracing::warn;

use super::proxy::ProxyEnv;
use crate::{Error, Result};

/// How long a connection and a request may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KubeTimeouts {
    /// TCP connection (and the proxy's, when one is used).
    pub connect: Duration,
    /// From sending a request to its response's headers, and between two
    /// reads of its body.
    pub request: Duration,
}

impl KubeTimeouts {
    /// A request timeout of `request`; connecting takes at most 10 s of it.
    pub fn for_request(request: Duration) -> KubeTimeouts {
        KubeTimeouts {
            connect: request.min(Duration::from_secs(10)),
            request,
        }
    }

    /// The user is told what is awaited after this long.
    fn progress_after(&self) -> Duration {
        (self.request / 3).clamp(Duration::from_millis(500), Duration::from_secs(5))
    }
}

impl Default for KubeTimeouts {
    fn default() -> Self {
        KubeTimeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(30),
        }
    }
}

/// A request to the API server that failed below HTTP: the server is named.
#[derive(Debug, thiserror::Error)]
pub enum ApiServerError {
    /// Connected (or connecting), but no answer in time.
    #[error(
        "the API server {server} did not answer {request} within {after:?}{via}; check that it is \
         the cluster's API server and reachable from here (kubeconfig `server`, VPN, security \
         groups), or allow more time with --request-timeout"
    )]
    Silent {
        server: String,
        request: String,
        after: Duration,
        via: String,
    },
    /// No connection, a refused TLS handshake or a broken one.
    #[error("cannot reach the API server {server}{via}")]
    Unreachable {
        server: String,
        via: String,
        #[source]
        source: BoxError,
    },
}

impl ApiServerError {
    /// Whether the error is a server that did not answer in time (retrying
    /// it only makes the user wait again).
    pub fn is_silent(error: &kube::Error) -> bool {
        matches!(error, kube::Error::Service(e)
            if matches!(e.downcast_ref::<ApiServerError>(), Some(ApiServerError::Silent { .. })))
    }
}

/// The server's name for messages, and the proxy's, if one is taken.
#[derive(Debug, Clone)]
struct Target {
    server: Arc<str>,
    via: Arc<str>,
}

/// Times each request out, names the server in transport errors and says
/// what is awaited while a request takes long.
#[derive(Clone)]
struct Watched<S> {
    inner: S,
    target: Target,
    timeouts: KubeTimeouts,
}

impl<S, B> Service<Request<Body>> for Watched<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: 'static,
{
    type Response = Response<B>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<B>, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let what = format!("{} {}", request.method(), request.uri().path());
        let target = self.target.clone();
        let timeouts = self.timeouts;
        let response = self.inner.call(request);
        Box::pin(async move {
            let silent = || ApiServerError::Silent {
                server: target.server.to_string(),
                request: what.clone(),
                after: timeouts.request,
                via: target.via.to_string(),
            };
            let unreachable = |source: BoxError| ApiServerError::Unreachable {
                server: target.server.to_string(),
                via: target.via.to_string(),
                source,
            };
            let deadline = tokio::time::sleep(timeouts.request);
            let progress = tokio::time::sleep(timeouts.progress_after());
            tokio::pin!(response, deadline, progress);
            let mut told = false;
            // One word for the user while requests wait, not one per request.
            static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            loop {
                tokio::select! {
                    result = &mut response => {
                        return result.map_err(|e| {
                            let e: BoxError = e.into();
                            if timed_out(&*e) {
                                Box::new(silent()) as BoxError
                            } else {
                                Box::new(unreachable(e)) as BoxError
                            }
                        });
                    }
                    () = &mut deadline => return Err(Box::new(silent()) as BoxError),
                    () = &mut progress, if !told => {
                        told = true;
                        if SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
                            continue;
                        }
                        warn!(
                            "waiting for the API server {}{} ({what}): no answer after {:?}, \
                             giving up after {:?}",
                            target.server, target.via, timeouts.progress_after(), timeouts.request
                        );
                    }
                }
            }
        })
    }
}

/// Whether an error (or a cause of it) is an I/O timeout.
fn timed_out(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// The proxy URL with its credentials left out (for messages).
fn redacted(proxy: &Uri) -> String {
    let host = proxy.host().unwrap_or_default();
    let scheme = proxy.scheme_str().unwrap_or("http");
    match proxy.port_u16() {
        Some(port) => format!("{scheme}://{host}:{port}"),
        None => format!("{scheme}://{host}"),
    }
}

/// The `Proxy-Authorization` of `user:password@` in a proxy URL.
fn proxy_authorization(proxy: &Uri) -> Option<http::HeaderValue> {
    use base64::Engine;
    let (userinfo, _) = proxy.authority()?.as_str().rsplit_once('@')?;
    let decoded: Vec<u8> = percent_encoding::percent_decode_str(userinfo).collect();
    let value = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(decoded)
    );
    http::HeaderValue::from_str(&value).ok()
}

/// The proxy a client of `config` takes: the kubeconfig cluster's
/// `proxy-url` when `cluster_proxy` names one, else the environment's.
fn proxy_for(config: &Config, cluster_proxy: Option<&str>) -> Result<Option<Uri>, String> {
    let written = match cluster_proxy {
        Some(p) if !p.trim().is_empty() => Some(p.trim().to_owned()),
        _ => ProxyEnv::from_env()
            .for_server(&config.cluster_url)
            .map(str::to_owned),
    };
    let Some(written) = written else {
        return Ok(None);
    };
    // Go takes a proxy without a scheme as `http://`.
    let with_scheme = if written.contains("://") {
        written
    } else {
        format!("http://{written}")
    };
    let uri: Uri = with_scheme.parse().map_err(|e| {
        format!("the proxy URL is not a URL ({e}); fix HTTPS_PROXY or the kubeconfig's proxy-url")
    })?;
    match uri.scheme_str() {
        Some("http" | "https") if uri.host().is_some() => Ok(Some(uri)),
        _ => Err(format!(
            "proxy {}: only http:// and https:// proxies are supported; fix HTTPS_PROXY or the \
             kubeconfig's proxy-url",
            redacted(&uri)
        )),
    }
}

/// Builds the client of `config`. `cluster_proxy` is the kubeconfig
/// cluster's `proxy-url`, which (as in kubectl) wins over the environment.
/// The error text names what to fix.
pub fn build_client(
    config: Config,
    cluster_proxy: Option<&str>,
    timeouts: KubeTimeouts,
    versions: HttpVersions,
) -> Result<Client, String> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Only fails when another thread installed one in between.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
    let proxy = proxy_for(&config, cluster_proxy)?;
    let target = Target {
        server: config.cluster_url.to_string().trim_end_matches('/').into(),
        via: proxy
            .as_ref()
            .map(|p| format!(" (through the proxy {})", redacted(p)))
            .unwrap_or_default()
            .into(),
    };
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(timeouts.connect));
    match proxy {
        None => finish(config, tcp, target, timeouts, versions),
        Some(proxy) => {
            let auth = proxy_authorization(&proxy);
            fn tunnel<C>(tunnel: Tunnel<C>, auth: Option<http::HeaderValue>) -> Tunnel<C> {
                match auth {
                    Some(a) => tunnel.with_auth(a),
                    None => tunnel,
                }
            }
            if proxy.scheme_str() == Some("https") {
                let to_proxy = config
                    .rustls_https_connector_with_connector(tcp)
                    .map_err(|e| e.to_string())?;
                finish(
                    config,
                    tunnel(Tunnel::new(proxy, to_proxy), auth),
                    target,
                    timeouts,
                    versions,
                )
            } else {
                finish(
                    config,
                    tunnel(Tunnel::new(proxy, tcp), auth),
                    target,
                    timeouts,
                    versions,
                )
            }
        }
    }
}

fn finish<C>(
    config: Config,
    connector: C,
    target: Target,
    timeouts: KubeTimeouts,
    versions: HttpVersions,
) -> Result<Client, String>
where
    C: Service<Uri> + Clone + Send + Sync + 'static,
    C::Response: hyper_util::client::legacy::connect::Connection
        + hyper::rt::Read
        + hyper::rt::Write
        + Send
        + Unpin
        + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    let https = match versions {
        HttpVersions::Http1 => config
            .rustls_https_connector_with_connector(connector)
            .map_err(|e| e.to_string())?,
        HttpVersions::Negotiated => {
            // kube's connector, with HTTP/2 offered in the TLS handshake
            // (ALPN, which the builder sets from the versions enabled).
            let tls = config.rustls_client_config().map_err(|e| e.to_string())?;
            let builder = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http();
            let builder = match &config.tls_server_name {
                Some(name) => {
                    builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                        name.clone()
                            .try_into()
                            .map_err(|e: rustls::pki_types::InvalidDnsNameError| e.to_string())?,
                    ))
                }
                None => builder,
            };
            builder.enable_all_versions().wrap_connector(connector)
        }
    };
    let mut timed = TimeoutConnector::new(https);
    timed.set_connect_timeout(Some(timeouts.connect));
    timed.set_read_timeout(Some(timeouts.request));
    timed.set_write_timeout(Some(timeouts.request));
    // A kept-alive connection always has a read pending (HTTP/2's driver
    // even more): without this its countdown would run from the last answer,
    // not from the next request, and cut a request sent late on it short.
    timed.set_reset_reader_on_write(true);
    let http: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(timed);
    let auth = config.auth_layer().map_err(|e| e.to_string())?;
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(auth)
        .layer(config.extra_headers_layer().map_err(|e| e.to_string())?)
        .service(Watched {
            inner: http,
            target,
            timeouts,
        });
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}

/// The HTTP versions a client offers the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersions {
    /// HTTP/1.1 alone, one connection per concurrent request (kubectl's
    /// default for kube-rs clients).
    Http1,
    /// HTTP/2 when the server takes it in the TLS handshake (the API server
    /// does), else HTTP/1.1: once the first connection is up, concurrent
    /// requests share it instead of each paying a TLS handshake.
    Negotiated,
}

/// Builds a client following kubectl's conventions: an explicit kubeconfig
/// and/or context when given, else the files `KUBECONFIG` lists (merged as
/// kubectl merges them: the first file to set a value wins, missing files are
/// skipped), else `~/.kube/config`, then the in-cluster configuration; the
/// proxy as kubectl takes it (the cluster's `proxy-url`, else `HTTPS_PROXY`
/// unless `NO_PROXY` names the server).
pub async fn client(
    kubeconfig: Option<&Path>,
    context: Option<&str>,
    timeouts: KubeTimeouts,
) -> Result<Client> {
    let kube_err = |message: String| Error::KubeConfig { message };
    let listed = std::env::var_os("KUBECONFIG").filter(|l| !l.is_empty());
    let file = match (kubeconfig, &listed) {
        (Some(path), _) => Some(read_kubeconfig(path)?),
        (None, Some(list)) => merged_kubeconfig(list)?,
        (None, None) => default_kubeconfig()?,
    };
    let (config, cluster_proxy) = match file {
        Some(kc) => from_kubeconfig(kc, context).await.map_err(kube_err)?,
        None => {
            let config = Config::incluster().map_err(|e| {
                kube_err(match (&listed, context) {
                    (Some(_), _) => format!(
                        "no file KUBECONFIG lists exists, and this is not a pod ({e}); \
                         point KUBECONFIG or --kubeconfig at a kubeconfig file"
                    ),
                    (None, Some(context)) => format!(
                        "--context {context}: there is no kubeconfig (KUBECONFIG unset, no \
                         ~/.kube/config); point --kubeconfig at one"
                    ),
                    (None, None) => format!(
                        "no kubeconfig (KUBECONFIG unset, no ~/.kube/config) and this is not \
                         a pod ({e}); point --kubeconfig at a kubeconfig file"
                    ),
                })
            })?;
            (config, None)
        }
    };
    if config.accept_invalid_certs {
        // Said once, in the product's words (kube says it per connection;
        // its warning is filtered out by default).
        warn!(
            server = %config.cluster_url,
            "the kubeconfig sets insecure-skip-tls-verify: the API server's certificate is not \
             checked, so anyone on the path can read and change what is sent, tokens included; \
             set certificate-authority-data instead"
        );
    }
    build_client(
        config,
        cluster_proxy.as_deref(),
        timeouts,
        HttpVersions::Http1,
    )
    .map_err(kube_err)
}

/// The configuration of `kubeconfig` at `context` (or its current one) and
/// that cluster's `proxy-url`; the error says what is wrong in the file.
pub async fn from_kubeconfig(
    kubeconfig: Kubeconfig,
    context: Option<&str>,
) -> std::result::Result<(Config, Option<String>), String> {
    let proxy = cluster_proxy(&kubeconfig, context);
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..Default::default()
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| e.to_string())?;
    Ok((config, proxy))
}

/// The `proxy-url` of the cluster `context` (or the current context) uses.
pub fn cluster_proxy(kubeconfig: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let context = context.or(kubeconfig.current_context.as_deref())?;
    let cluster = kubeconfig
        .contexts
        .iter()
        .find(|c| c.name == context)?
        .context
        .as_ref()?
        .cluster
        .clone();
    kubeconfig
        .clusters
        .iter()
        .find(|c| c.name == cluster)?
        .cluster
        .as_ref()?
        .proxy_url
        .clone()
}

fn read_kubeconfig(path: &Path) -> Result<Kubeconfig> {
    Kubeconfig::read_from(path).map_err(|e| Error::KubeConfig {
        message: format!("{}: {e}", path.display()),
    })
}

/// `~/.kube/config` when it exists.
fn default_kubeconfig() -> Result<Option<Kubeconfig>> {
    let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) else {
        return Ok(None);
    };
    let path = Path::new(&home).join(".kube").join("config");
    if path.is_file() {
        read_kubeconfig(&path).map(Some)
    } else {
        Ok(None)
    }
}

/// The files of a `KUBECONFIG` list merged in order, as kubectl does: empty
/// entries and files that do not exist are skipped; `None` when none exists.
pub fn merged_kubeconfig(list: &std::ffi::OsStr) -> Result<Option<Kubeconfig>> {
    let mut merged: Option<Kubeconfig> = None;
    for path in std::env::split_paths(list) {
        if path.as_os_str().is_empty() || !path.exists() {
            continue;
        }
        let next = read_kubeconfig(&path)?;
        merged = Some(match merged {
            None => next,
            Some(m) => m.merge(next).map_err(|e| Error::KubeConfig {
                message: format!("merging {} into the files before it: {e}", path.display()),
            })?,
        });
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_become_basic_auth_and_stay_out_of_messages() {
        let proxy: Uri = "http://user:pa%40ss@proxy.corp:3128".parse().unwrap();
        let auth = proxy_authorization(&proxy).unwrap();
        // base64("user:pa@ss")
        assert_eq!(auth.to_str().unwrap(), "Basic dXNlcjpwYUBzcw==");
        assert_eq!(redacted(&proxy), "http://proxy.corp:3128");
        assert!(proxy_authorization(&"http://proxy.corp:3128".parse().unwrap()).is_none());
    }

    #[test]
    fn timeouts_are_found_among_the_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let timeout = Outer(std::io::Error::new(std::io::ErrorKind::TimedOut, "t"));
        assert!(timed_out(&timeout));
        let refused = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "r",
        ));
        assert!(!timed_out(&refused));
    }
}
