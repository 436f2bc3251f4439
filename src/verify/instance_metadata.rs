//! `verify job`'s `instance-metadata` check: can this pod reach the instance
//! metadata service, and through it the node's IAM role? A job that cannot
//! get its own credentials falls back to the node's role there, and a
//! malicious job can ask for it on purpose.
//!
//! The check asks only where `AWS_EC2_METADATA_SERVICE_ENDPOINT` (the AWS
//! SDKs' own override) points, or the default endpoint inside a pod; outside
//! a pod without the variable it does not run, so tests and workstations
//! never send a packet off the machine.

use std::collections::BTreeMap;
use std::time::Duration;

use super::Check;

/// The SDKs' override of the instance metadata endpoint.
pub const ENDPOINT_VARIABLE: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
/// The instance metadata service on EC2 (IPv4).
pub const DEFAULT_ENDPOINT: &str = "http://169.254.169.254";
/// How long the IMDSv2 token request may take: a pod behind a hop limit of 1
/// or a NetworkPolicy never gets an answer.
pub const TIMEOUT: Duration = Duration::from_secs(1);

const NAME: &str = "instance-metadata";

/// Where the check asks, if anywhere: the override when set, the default
/// endpoint only in a pod (`KUBERNETES_SERVICE_HOST`), else nowhere.
pub fn endpoint(env: &BTreeMap<String, String>) -> Option<String> {
    let set = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    match set(ENDPOINT_VARIABLE) {
        Some(endpoint) => Some(endpoint.trim_end_matches('/').to_owned()),
        None if set("KUBERNETES_SERVICE_HOST").is_some() => Some(DEFAULT_ENDPOINT.to_owned()),
        None => None,
    }
}

/// The check, or `None` when it does not run (outside a pod, no override).
/// Any answer to the IMDSv2 token request means the service is reachable:
/// a warning, a failure with `strict`.
pub async fn check(env: &BTreeMap<String, String>, strict: bool) -> Option<Check> {
    let base = endpoint(env)?;
    match token_request(&base).await {
        Ok(status) => {
            let detail = format!(
                "the instance metadata service at {base} answers this pod (HTTP {status} to an \
                 IMDSv2 token request): a job that misses its own credentials, or wants to, can \
                 take the node's IAM role"
            );
            let fix = "block it: the NetworkPolicy runner-identity plans per repository namespace \
                       (kubernetes.blockInstanceMetadata, needs a CNI that enforces \
                       NetworkPolicies), and/or the nodes' launch template with \
                       http_put_response_hop_limit = 1 (and http_tokens = required)";
            Some(if strict {
                Check::fail(NAME, detail, fix)
            } else {
                Check::warn(NAME, detail, fix)
            })
        }
        Err(Unanswered::Unusable(why)) => Some(Check::fail(
            NAME,
            format!("{ENDPOINT_VARIABLE} is `{base}`: {why}"),
            "point it at the instance metadata service (http://host[:port]), or unset it",
        )),
        Err(Unanswered::Silent(how)) => Some(Check::pass(
            NAME,
            format!(
                "the instance metadata service at {base} does not answer within {} s ({how}): \
                 the node's role is out of reach",
                TIMEOUT.as_secs()
            ),
        )),
    }
}

/// Why no answer came.
enum Unanswered {
    /// The endpoint is not an `http://` URL with a host.
    Unusable(String),
    /// No connection, or no response in time.
    Silent(&'static str),
}

/// An IMDSv2 token request (`PUT /latest/api/token`) over a plain HTTP/1.1
/// connection, all within [`TIMEOUT`]; the response's status code. IMDS
/// speaks plain HTTP: no TLS is set up, no proxy is used.
async fn token_request(base: &str) -> Result<u16, Unanswered> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let url = url::Url::parse(base).map_err(|e| Unanswered::Unusable(e.to_string()))?;
    if url.scheme() != "http" {
        return Err(Unanswered::Unusable("not an http:// URL".into()));
    }
    let host = url
        .host_str()
        .ok_or_else(|| Unanswered::Unusable("no host".into()))?
        .to_owned();
    let port = url.port_or_known_default().unwrap_or(80);
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect((host.trim_matches(['[', ']']), port))
            .await
            .map_err(|_| Unanswered::Silent("no connection"))?;
        // One small request: sent at once, not held for an ACK (Nagle).
        let _ = stream.set_nodelay(true);
        let request = format!(
            "PUT /latest/api/token HTTP/1.1\r\nHost: {host}\r\n\
             X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|_| Unanswered::Silent("no connection"))?;
        let mut head = [0u8; 32];
        let read = stream
            .read(&mut head)
            .await
            .map_err(|_| Unanswered::Silent("no response"))?;
        // `HTTP/1.1 200 OK`: the status is the second word.
        std::str::from_utf8(&head[..read])
            .ok()
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or(Unanswered::Silent("no HTTP response"))
    };
    tokio::time::timeout(TIMEOUT, exchange)
        .await
        .unwrap_or(Err(Unanswered::Silent("timed out")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::report::Status;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_default_endpoint_is_asked_only_in_a_pod() {
        assert_eq!(endpoint(&env(&[])), None);
        assert_eq!(endpoint(&env(&[(ENDPOINT_VARIABLE, "")])), None);
        assert_eq!(
            endpoint(&env(&[("KUBERNETES_SERVICE_HOST", "10.100.0.1")])).as_deref(),
            Some(DEFAULT_ENDPOINT)
        );
        assert_eq!(
            endpoint(&env(&[
                ("KUBERNETES_SERVICE_HOST", "10.100.0.1"),
                (ENDPOINT_VARIABLE, "http://127.0.0.1:9/")
            ]))
            .as_deref(),
            Some("http://127.0.0.1:9")
        );
    }

    #[tokio::test]
    async fn outside_a_pod_without_the_variable_there_is_no_check() {
        assert!(check(&env(&[("HOME", "/root")]), true).await.is_none());
    }

    /// A loopback IMDS that answers the token request with `status`.
    async fn answering(status: &'static str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(String::from_utf8_lossy(&buf[..n]).starts_with("PUT /latest/api/token "));
            s.write_all(status.as_bytes()).await.unwrap();
        });
        format!("http://127.0.0.1:{port}")
    }

    #[tokio::test]
    async fn an_answering_service_warns_and_fails_when_strict() {
        for (strict, status) in [(false, Status::Warn), (true, Status::Fail)] {
            let base = answering("HTTP/1.1 401 Unauthorized\r\n\r\n").await;
            let c = check(&env(&[(ENDPOINT_VARIABLE, &base)]), strict)
                .await
                .unwrap();
            assert_eq!(c.status, status, "{c:?}");
            assert!(c.detail.contains("HTTP 401"), "{c:?}");
        }
        // Nothing listening: out of reach, a pass.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let url = format!("http://127.0.0.1:{closed}");
        let c = check(&env(&[(ENDPOINT_VARIABLE, &url)]), true)
            .await
            .unwrap();
        assert_eq!(c.status, Status::Pass, "{c:?}");
        let c = check(&env(&[(ENDPOINT_VARIABLE, "https://127.0.0.1:1")]), false)
            .await
            .unwrap();
        assert_eq!(c.status, Status::Fail, "not http: {c:?}");
    }
}
