//! Tier 3: how the binary reaches the API server — through an HTTP CONNECT
//! proxy as kubectl would take it, and what it says when the server never
//! answers. Everything listens on loopback; the proxy maps the one name it
//! knows (`kubernetes.default.svc`, in the stack certificate's names) to the
//! stack's loopback address and refuses every other destination, so nothing
//! is ever resolved or sent off this machine.

use crate::common::cli::{Ran, ri};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{kubeconfig_path, stack_issuer};

/// What the proxy was asked: the CONNECT target and its
/// `Proxy-Authorization`, per tunnel.
#[derive(Debug, Clone, Default)]
struct Seen {
    tunnels: Vec<(String, Option<String>)>,
}

/// A CONNECT proxy on loopback; returns its port and what it saw.
fn connect_proxy() -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let record = seen.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let record = record.clone();
            std::thread::spawn(move || tunnel(client, &record));
        }
    });
    (port, seen)
}

fn tunnel(client: TcpStream, seen: &Mutex<Seen>) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    let mut auth = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("proxy-authorization")
        {
            auth = Some(value.trim().to_owned());
        }
    }
    let target = first
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    seen.lock().unwrap().tunnels.push((target.clone(), auth));
    let (host, port) = target.rsplit_once(':').unwrap();
    let mut client = client;
    // Only loopback and the certificate's in-cluster name are served.
    if !matches!(host, "127.0.0.1" | "kubernetes.default.svc") {
        let _ = client.write_all(b"HTTP/1.1 403 Forbidden\r\n\r\n");
        return;
    }
    let Ok(upstream) = TcpStream::connect(("127.0.0.1", port.parse::<u16>().unwrap())) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .unwrap();
    let buffered = reader.buffer().to_vec();
    let mut up_write = upstream.try_clone().unwrap();
    up_write.write_all(&buffered).unwrap();
    let mut down_read = upstream;
    let mut client_write = client.try_clone().unwrap();
    let up = std::thread::spawn(move || {
        let _ = std::io::copy(&mut reader, &mut up_write);
        let _ = up_write.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut down_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = up.join();
}

/// The stack's kubeconfig with its server replaced and, when given, the
/// cluster's `proxy-url`.
fn kubeconfig(dir: &std::path::Path, server: &str, proxy_url: Option<&str>) -> std::path::PathBuf {
    let text = std::fs::read_to_string(kubeconfig_path()).unwrap();
    let issuer = stack_issuer();
    let line = text
        .lines()
        .find(|l| l.trim() == format!("server: {issuer}"))
        .expect("the stack kubeconfig names its server")
        .to_owned();
    let indent = &line[..line.len() - line.trim_start().len()];
    let mut new_line = format!("{indent}server: {server}");
    if let Some(proxy) = proxy_url {
        new_line.push_str(&format!("\n{indent}proxy-url: {proxy}"));
    }
    let replaced = text.replace(&line, &new_line);
    let path = dir.join(format!("kubeconfig-{}", dir.read_dir().unwrap().count()));
    std::fs::write(&path, replaced).unwrap();
    path
}

fn run(args: &[&str], envs: &[(&str, &str)]) -> Ran {
    ri(args).envs(envs).run()
}

/// `doctor` of a namespace without scale sets: every request it makes, none
/// of the findings a scale set would bring.
fn doctor_args(kubeconfig: &std::path::Path) -> Vec<&str> {
    vec![
        "doctor",
        "--skip-aws",
        "-n",
        "runner-identity-no-such-namespace",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]
}

fn doctor(kubeconfig: &std::path::Path, envs: &[(&str, &str)]) -> Ran {
    run(&doctor_args(kubeconfig), envs)
}

#[test]
fn kubernetes_requests_take_the_proxy_kubectl_would_take() {
    let dir = tempfile::tempdir().unwrap();
    let port = stack_issuer().rsplit_once(':').unwrap().1.to_owned();
    let (proxy_port, seen) = connect_proxy();
    let proxy = format!("http://127.0.0.1:{proxy_port}");
    let tunnels = || seen.lock().unwrap().tunnels.clone();

    // A loopback server with HTTPS_PROXY set: connected directly, as Go
    // does. Before, any HTTPS_PROXY failed every Kubernetes command.
    let direct = kubeconfig(dir.path(), &stack_issuer(), None);
    let o = doctor(&direct, &[("HTTPS_PROXY", &proxy)]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        tunnels().is_empty(),
        "loopback is never proxied: {:?}",
        tunnels()
    );

    // A named server: through the proxy, which is asked for that name (the
    // client never resolves it) and port; NO_PROXY naming other hosts and
    // the proxy's own address changes nothing.
    let named = kubeconfig(
        dir.path(),
        &format!("https://kubernetes.default.svc:{port}"),
        None,
    );
    let o = doctor(
        &named,
        &[
            ("HTTPS_PROXY", &proxy),
            ("NO_PROXY", "example.com,127.0.0.1,.cluster.local"),
        ],
    );
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let want = format!("kubernetes.default.svc:{port}");
    assert!(
        !tunnels().is_empty() && tunnels().iter().all(|(t, _)| *t == want),
        "{:?}",
        tunnels()
    );

    // The kubeconfig's proxy-url wins, for a loopback server too, and its
    // credentials go to the proxy as Basic auth, never into the output.
    seen.lock().unwrap().tunnels.clear();
    let with_url = kubeconfig(
        dir.path(),
        &stack_issuer(),
        Some(&format!("http://robot:s3cr%40t@127.0.0.1:{proxy_port}")),
    );
    let o = doctor(&with_url, &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    let seen_tunnels = tunnels();
    assert!(!seen_tunnels.is_empty());
    for (target, auth) in &seen_tunnels {
        assert_eq!(*target, format!("127.0.0.1:{port}"));
        // base64("robot:s3cr@t")
        assert_eq!(auth.as_deref(), Some("Basic cm9ib3Q6czNjckB0"));
    }

    // A proxy that refuses the tunnel: exit 3, the server and the proxy named.
    let elsewhere = kubeconfig(dir.path(), "https://api.elsewhere.test:443", None);
    let o = doctor(&elsewhere, &[("HTTPS_PROXY", &proxy)]);
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    let err = o.stderr;
    assert!(err.contains("https://api.elsewhere.test"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{proxy_port}")), "{err}");

    // A proxy of a scheme the client cannot speak is a local problem.
    let o = doctor(&named, &[("HTTPS_PROXY", "socks5://127.0.0.1:1")]);
    assert_eq!(o.code, Some(2), "{}", o.stderr);
    assert!(o.stderr.contains("HTTPS_PROXY"), "{}", o.stderr);
}

#[test]
fn an_api_server_that_never_answers_is_named_within_the_timeout() {
    // Accepts connections and never answers (the TLS handshake hangs).
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let silent = kubeconfig(dir.path(), &format!("https://127.0.0.1:{port}"), None);
    let start = Instant::now();
    let o = run(
        &[
            "apply",
            "--skip-aws",
            "-c",
            "examples/org-irsa.yaml",
            "--request-timeout",
            "3s",
            "--kubeconfig",
            silent.to_str().unwrap(),
        ],
        &[],
    );
    let took = start.elapsed();
    let err = o.stderr;
    assert_eq!(o.code, Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "the API server https://127.0.0.1:{port} did not answer"
        )),
        "{err}"
    );
    assert!(err.contains("--request-timeout"), "{err}");
    assert!(
        err.contains("waiting for the API server"),
        "progress while waiting: {err}"
    );
    // Not retried: one wait of 3 s per request (a few run in parallel),
    // where the old client waited 5 × 30 s.
    assert!(took < Duration::from_secs(20), "{took:?}: {err}");
    assert!(!o.stdout.contains("Error"), "{}", o.stdout);
}

#[test]
fn a_malformed_request_timeout_is_refused_before_anything_is_asked() {
    for bad in ["0", "soon", "5x"] {
        let o = run(
            &[
                "apply",
                "-c",
                "examples/org-irsa.yaml",
                "--request-timeout",
                bad,
            ],
            &[],
        );
        assert_eq!(o.code, Some(2), "{bad}: {}", o.stderr);
        assert!(o.stderr.contains("--request-timeout"), "{}", o.stderr);
    }
}

/// `strace` of `args`: every TCP connection the process opened, and how
/// many of them set `TCP_NODELAY` on and off.
fn traced_connections(args: &[&str], envs: &[(&str, &str)]) -> (Ran, usize, usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let mut traced = vec![
        "-f",
        "-e",
        "trace=connect,setsockopt",
        "-o",
        trace.to_str().unwrap(),
        env!("CARGO_BIN_EXE_runner-identity"),
    ];
    traced.extend_from_slice(args);
    let mut cmd = Command::new("strace");
    cmd.args(&traced)
        .current_dir(crate::common::root())
        .env_remove("KUBECONFIG");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = Ran::from(
        cmd.output()
            .expect("strace runs (scripts/stack.sh install installs it)"),
    );
    let text = std::fs::read_to_string(&trace).unwrap();
    let tcp = text
        .lines()
        .filter(|l| l.contains("connect(") && (l.contains("AF_INET,") || l.contains("AF_INET6,")))
        .count();
    let on = text.matches("TCP_NODELAY, [1]").count();
    let off = text.matches("TCP_NODELAY, [0]").count();
    (o, tcp, on, off)
}

/// A plain HTTP server on loopback answering every request 500 (a GitHub
/// that fails).
fn failing_http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = stream.write_all(
                b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 2\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    port
}

#[test]
fn every_connection_sets_tcp_nodelay() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(dir.path(), &stack_issuer(), None);
    // Kubernetes (kube): before, `TCP_NODELAY` was set off.
    let (o, tcp, on, off) = traced_connections(&doctor_args(&kubeconfig), &[]);
    assert_eq!(o.code, Some(0), "{}", o.stderr);
    assert!(
        tcp >= 1 && on >= tcp && off == 0,
        "kube: {tcp} connections, {on} on, {off} off"
    );

    // GitHub (octocrab over reqwest).
    let port = failing_http_server();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "github:\n  owner: acme\n  url: http://127.0.0.1:{port}\nselect:\n  topics: [arc]\n\
             cluster:\n  name: test\n  oidcIssuer: https://oidc.example\naws:\n  accountId: \"123456789012\"\n  mode: irsa\n"
        ),
    )
    .unwrap();
    let (o, tcp, on, off) = traced_connections(
        &["discover", "-c", config.to_str().unwrap()],
        &[("GITHUB_TOKEN", "not-a-real-token")],
    );
    assert_eq!(o.code, Some(3), "{}", o.stderr);
    assert!(
        tcp >= 1 && on >= tcp && off == 0,
        "GitHub: {tcp} connections, {on} on, {off} off: {}",
        o.stderr
    );
}

/// A request sent on a kept-alive connection gets its whole timeout: the
/// connection's read countdown restarts when a request is written (it ran
/// from the previous answer before, so a request sent late on an idle
/// connection was cut short; with HTTP/2 the whole connection would go).
#[tokio::test]
async fn a_request_sent_late_on_a_kept_alive_connection_gets_its_whole_timeout() {
    use runner_identity::net::{HttpVersions, KubeTimeouts, build_client};
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(path("/version"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(
                    serde_json::json!({"major": "1", "minor": "20", "gitVersion": "v1.20.2"}),
                )
                .set_delay(Duration::from_millis(600)),
        )
        .mount(&server)
        .await;
    let config = kube::Config::new(server.uri().parse().unwrap());
    let client = build_client(
        config,
        None,
        KubeTimeouts::for_request(Duration::from_secs(1)),
        HttpVersions::Http1,
    )
    .unwrap();
    client.apiserver_version().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // 1.2 s after the first answer, on the same connection.
    let started = Instant::now();
    client.apiserver_version().await.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(600));
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}
