//! Connections to the outside: the Kubernetes client every command uses
//! (proxies as kubectl takes them, `TCP_NODELAY`, timeouts that name the
//! server), and the proxy rules. A leaf module: it uses nothing of the stages.
//!
//! The other clients: the AWS SDK's connector sets `TCP_NODELAY` by default
//! and takes proxies from the environment; GitHub's client is built on
//! reqwest, which does both (see [`crate::github`]).

pub mod kube;
pub mod proxy;

pub use self::kube::{ApiServerError, HttpVersions, KubeTimeouts, build_client};
pub use proxy::ProxyEnv;
