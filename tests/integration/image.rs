//! The action image without a Docker engine: `scripts/build-image.sh` builds
//! it (umoci: the static binary, busybox, the CA bundle, the hook script),
//! the same inputs give the same digest, it is pushed with `skopeo` to a
//! real registry on loopback (Debian's docker-registry, the CNCF
//! distribution registry), pulled back by digest, its manifest and config
//! checked, unpacked, and run the way runner-container-hooks starts a
//! container step (`sh -e` on a script ending in `exec env K=V …
//! <entrypoint> <args>`), as the image's user 1001 with the pod's fsGroup,
//! against the real local stack.

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::*;
use runner_identity::apply::{self, Options};

/// The image's size budget.
const IMAGE_BUDGET_BYTES: u64 = 20_000_000;

fn image_binary() -> PathBuf {
    let path = std::env::var_os("RUNNER_IDENTITY_IMAGE_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"));
            target.join("x86_64-unknown-linux-musl/dist/runner-identity")
        });
    assert!(
        path.is_file(),
        "the image binary {} is missing: run scripts/build-image-binary.sh (scripts/test.sh does)",
        path.display()
    );
    path
}

/// A fixed build time: builds of the same inputs must be byte-identical.
const EPOCH: &str = "1700000000";

/// `scripts/build-image.sh DIR` with the tested binary; the layout's index.
fn build_layout(dir: &Path, epoch: &str) -> serde_json::Value {
    let o = Command::new(root().join("scripts/build-image.sh"))
        .arg(dir)
        .env("RUNNER_IDENTITY_IMAGE_BINARY", image_binary())
        .env("SOURCE_DATE_EPOCH", epoch)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "scripts/build-image.sh failed (scripts/stack.sh install installs umoci): {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap()
}

/// A registry (the CNCF distribution registry Debian ships) on a free
/// loopback port, stopped on drop.
struct Registry {
    child: std::process::Child,
    address: String,
    _storage: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let binary = Path::new("/usr/bin/docker-registry");
        assert!(
            binary.is_file(),
            "docker-registry is missing: scripts/stack.sh install installs it"
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let storage = tempfile::tempdir().unwrap();
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: {address}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .args(["serve", config.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the registry did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Registry {
            child,
            address,
            _storage: storage,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `skopeo ARGS` (loopback registry: plain HTTP; no signature policy).
fn skopeo(args: &[&str]) -> Vec<u8> {
    let o = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("skopeo is missing: scripts/stack.sh install installs it");
    assert!(
        o.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o.stdout
}

/// Builds the image, pushes it to a loopback registry, pulls it back by
/// digest, checks what its manifest and config say, and unpacks it: the
/// root file system under `dir`.
fn pulled_image_rootfs(dir: &Path) -> PathBuf {
    use sha2::Digest;
    let layout = dir.join("layout");
    build_layout(&layout, EPOCH);
    let registry = Registry::start();
    let reference = format!("docker://{}/runner-identity:v1", registry.address);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:amd64", layout.display()),
        &reference,
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    let digest = format!("sha256:{}", hex(&sha2::Sha256::digest(&raw)));
    let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    let annotations = &manifest["annotations"];
    for key in [
        "org.opencontainers.image.source",
        "org.opencontainers.image.revision",
        "org.opencontainers.image.version",
        "org.opencontainers.image.licenses",
    ] {
        assert!(
            annotations[key].as_str().is_some_and(|v| !v.is_empty()),
            "{key}: {manifest}"
        );
    }
    let pulled = dir.join("pulled");
    let by_digest = format!("docker://{}/runner-identity@{digest}", registry.address);
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &by_digest,
        &format!("oci:{}:amd64", pulled.display()),
    ]);
    let config: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        &format!("oci:{}:amd64", pulled.display()),
    ]))
    .unwrap();
    assert_eq!(config["architecture"], "amd64", "{config}");
    assert_eq!(config["config"]["User"], "1001:1001", "{config}");
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/runner-identity"]),
        "{config}"
    );
    let bundle = dir.join("bundle");
    let o = Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:amd64", pulled.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    bundle.join("rootfs")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of the regular files under `dir`.
fn tree_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            total += tree_bytes(&entry.path());
        } else if kind.is_file() {
            total += entry.metadata().unwrap().len();
        }
    }
    total
}

#[test]
fn the_same_inputs_build_the_same_image_digest() {
    let dir = tempfile::tempdir().unwrap();
    let digest = |name: &str, epoch: &str| {
        build_layout(&dir.path().join(name), epoch)["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let first = digest("a", EPOCH);
    assert_eq!(first, digest("b", EPOCH), "a rebuild changed the digest");
    // The build time is part of the image: another one is another digest
    // (so the equality above is not vacuous).
    assert_ne!(first, digest("c", "1700000001"));
}

#[tokio::test]
async fn the_image_runs_verify_job_as_the_hooks_start_a_step() {
    let owner = unique("img");
    let config = TestConfig::irsa(&owner, &["app"], &stack_issuer()).account("123456789012");
    let (text, plan) = (config.yaml(), config.plan());
    let admin = admin_client().await;
    assert!(
        !apply::apply(&admin, &plan, &Options::default())
            .await
            .unwrap()
            .failed()
    );
    let names = &plan.repositories[0].names;
    let token = service_account_token(
        &admin,
        &names.namespace,
        &names.job_service_account,
        Some("sts.amazonaws.com"),
    )
    .await;

    // The image's file system: built, pushed, pulled back by digest, unpacked.
    let dir = tempfile::tempdir().unwrap();
    let rootfs = pulled_image_rootfs(dir.path());
    let image_bytes = tree_bytes(&rootfs);
    eprintln!("image files {image_bytes} bytes");
    assert!(
        image_bytes < IMAGE_BUDGET_BYTES,
        "{image_bytes} bytes is over the 20 MB budget"
    );
    let binary = rootfs.join("usr/local/bin/runner-identity");
    assert_eq!(
        std::fs::read(&binary).unwrap(),
        std::fs::read(image_binary()).unwrap(),
        "the image holds the binary it was built from"
    );

    // What the pod adds: the config (from the workspace), the projected token
    // (0640, group = fsGroup 1001, as the kubelet writes it), GITHUB_OUTPUT.
    std::fs::create_dir_all(rootfs.join("work")).unwrap();
    std::fs::write(rootfs.join("work/runner-identity.yaml"), &text).unwrap();
    let token_path = rootfs.join("var/run/secrets/eks.amazonaws.com/serviceaccount/token");
    std::fs::create_dir_all(token_path.parent().unwrap()).unwrap();
    std::fs::write(&token_path, &token).unwrap();
    chown(&token_path, Some(0), Some(1001)).unwrap();
    std::fs::set_permissions(&token_path, std::fs::Permissions::from_mode(0o640)).unwrap();
    let github = rootfs.join("github");
    std::fs::create_dir_all(&github).unwrap();
    chown(&github, Some(1001), Some(1001)).unwrap();
    for p in [dir.path(), rootfs.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    // The unpacked image is owned by root; the pod's files are added.
    // The hooks' step script: `exec env K=V … <entrypoint> <args>`.
    let role = &plan.repositories[0].iam_role.arn;
    let step = format!(
        "exec env INPUT_COMMAND=verify-job INPUT_CONFIG=/work/runner-identity.yaml \
         INPUT_GITHUB-OIDC=auto INPUT_MASK-ACCOUNT-ID=true \
         AWS_ROLE_ARN={role} AWS_WEB_IDENTITY_TOKEN_FILE=/var/run/secrets/eks.amazonaws.com/serviceaccount/token \
         AWS_ENDPOINT_URL={} AWS_REGION=us-east-1 \
         GITHUB_ACTIONS=true GITHUB_OUTPUT=/github/output \
         /usr/local/bin/runner-identity action\n",
        moto_url()
    );
    std::fs::write(rootfs.join("step.sh"), step).unwrap();
    // Resolved on this machine's PATH: the child's PATH is the image's.
    let chroot_bin = ["/usr/sbin/chroot", "/usr/bin/chroot"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .expect("coreutils' chroot");
    let chroot = |args: &[&str]| {
        Command::new(chroot_bin)
            .args(["--userspec=1001:1001", "--groups=1001"])
            .arg(&rootfs)
            .args(args)
            .env_clear()
            .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", IMDS_FAKE)
            .env("PATH", "/bin:/usr/local/bin")
            .output()
            .unwrap()
    };
    // The hooks keep the container alive with `tail -f /dev/null`; `env` runs the step.
    let o = chroot(&[
        "/bin/sh",
        "-c",
        "command -v tail && command -v env && tail -n 1 /step.sh",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let o = chroot(&["/bin/sh", "-e", "/step.sh"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(0), "{all}");
    assert!(all.contains("::add-mask::123456789012"), "{all}");
    assert!(
        all.contains(&format!(
            ":assumed-role/{}/",
            plan.repositories[0].iam_role.name
        )),
        "{all}"
    );
    let outputs = std::fs::read_to_string(github.join("output")).unwrap();
    assert!(
        outputs.contains("result<<") && outputs.contains("\npass\n"),
        "{outputs}"
    );
    assert!(
        outputs.contains(&format!("\n{}\n", names.repository)),
        "{outputs}"
    );
    for text in [&all, &outputs] {
        assert!(!text.contains(token.trim()), "the token leaked");
    }
}
