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

/// The static binary of `triple` the image is built from
/// (`RUNNER_IDENTITY_IMAGE_BINARY[_ARM64]`, else the dist build in the
/// target directory).
fn binary_of(variable: &str, triple: &str) -> PathBuf {
    let path = std::env::var_os(variable)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"));
            target.join(triple).join("dist/runner-identity")
        });
    assert!(
        path.is_file(),
        "the image binary {} is missing: run scripts/build-image-binary.sh {triple} (scripts/test.sh does)",
        path.display()
    );
    path
}

fn image_binary() -> PathBuf {
    binary_of("RUNNER_IDENTITY_IMAGE_BINARY", "x86_64-unknown-linux-musl")
}

fn image_binary_arm64() -> PathBuf {
    binary_of(
        "RUNNER_IDENTITY_IMAGE_BINARY_ARM64",
        "aarch64-unknown-linux-musl",
    )
}

/// A fixed build time: builds of the same inputs must be byte-identical.
const EPOCH: &str = "1700000000";

/// `scripts/build-image.sh DIR` with the tested binary; the layout's index.
fn build_layout(dir: &Path, epoch: &str) -> serde_json::Value {
    let o = Command::new(root().join("scripts/build-image.sh"))
        .arg(dir)
        .env("RUNNER_IDENTITY_IMAGE_BINARY", image_binary())
        .env("RUNNER_IDENTITY_IMAGE_BINARY_ARM64", image_binary_arm64())
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

/// The platform images of a pulled index: the root file systems.
struct Pulled {
    amd64: PathBuf,
    arm64: PathBuf,
}

/// Builds the image (both architectures and the index), pushes the index
/// with `skopeo copy --all` to a loopback registry, pulls each platform
/// image back by the digest the index names, checks what their manifests
/// and configs say, and unpacks them under `dir`.
fn pulled_image(dir: &Path) -> Pulled {
    use sha2::Digest;
    let layout = dir.join("layout");
    build_layout(&layout, EPOCH);
    let registry = Registry::start();
    let reference = format!("docker://{}/runner-identity:v1", registry.address);
    skopeo(&[
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:index", layout.display()),
        &reference,
    ]);
    let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &reference]);
    let index: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        index["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{index}"
    );
    let platforms: Vec<(String, String)> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let mut arches: Vec<&str> = platforms.iter().map(|(a, _)| a.as_str()).collect();
    arches.sort_unstable();
    assert_eq!(arches, ["amd64", "arm64"], "{index}");
    let mut rootfs = std::collections::BTreeMap::new();
    for (arch, digest) in &platforms {
        let by_digest = format!("docker://{}/runner-identity@{digest}", registry.address);
        let raw = skopeo(&["inspect", "--raw", "--tls-verify=false", &by_digest]);
        assert_eq!(
            format!("sha256:{}", hex(&sha2::Sha256::digest(&raw))),
            *digest,
            "the registry serves the manifest the index names"
        );
        let manifest: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        for key in [
            "org.opencontainers.image.source",
            "org.opencontainers.image.revision",
            "org.opencontainers.image.version",
            "org.opencontainers.image.licenses",
        ] {
            assert!(
                manifest["annotations"][key]
                    .as_str()
                    .is_some_and(|v| !v.is_empty()),
                "{arch} {key}: {manifest}"
            );
        }
        let pulled = dir.join(format!("pulled-{arch}"));
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &by_digest,
            &format!("oci:{}:{arch}", pulled.display()),
        ]);
        let config: serde_json::Value = serde_json::from_slice(&skopeo(&[
            "inspect",
            "--config",
            &format!("oci:{}:{arch}", pulled.display()),
        ]))
        .unwrap();
        assert_eq!(config["architecture"], arch.as_str(), "{config}");
        assert_eq!(config["os"], "linux", "{config}");
        assert_eq!(config["config"]["User"], "1001:1001", "{config}");
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/usr/local/bin/runner-identity"]),
            "{config}"
        );
        let bundle = dir.join(format!("bundle-{arch}"));
        let o = Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{arch}", pulled.display()))
            .arg(&bundle)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let files = bundle.join("rootfs");
        let bytes = tree_bytes(&files);
        eprintln!("{arch}: image files {bytes} bytes");
        assert!(
            bytes < IMAGE_BUDGET_BYTES,
            "{arch}: {bytes} bytes is over the 20 MB budget"
        );
        the_dockerfile_describes_this_image(&config, &files);
        rootfs.insert(arch.clone(), files);
    }
    Pulled {
        amd64: rootfs.remove("amd64").unwrap(),
        arm64: rootfs.remove("arm64").unwrap(),
    }
}

/// Every crate of the binary's build graph for `triple` (cargo tree:
/// normal and build dependencies) is in the image's SBOM, and the SBOM's
/// file checksums are the image's files.
fn image_sbom_lists_the_build_graph(rootfs: &Path, triple: &str) {
    use sha2::Digest;
    let sbom: serde_json::Value = serde_json::from_slice(
        &std::fs::read(rootfs.join("usr/share/doc/runner-identity/sbom.spdx.json"))
            .expect("the image carries its SBOM"),
    )
    .unwrap();
    let listed: std::collections::BTreeSet<String> = sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} v{}",
                p["name"].as_str().unwrap(),
                p["versionInfo"].as_str().unwrap()
            )
        })
        .collect();
    let o = Command::new("cargo")
        .current_dir(root())
        .args([
            "tree",
            "--locked",
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--target",
            triple,
        ])
        .args(["-p", "runner-identity"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let graph: std::collections::BTreeSet<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some(format!("{} {}", words.next()?, words.next()?))
        })
        .collect();
    assert!(graph.len() > 100, "{} crates: {graph:?}", graph.len());
    let missing: Vec<&String> = graph.difference(&listed).collect();
    assert!(missing.is_empty(), "{triple}: not in the SBOM: {missing:?}");
    for file in sbom["files"].as_array().unwrap() {
        let name = file["fileName"].as_str().unwrap();
        let bytes = std::fs::read(rootfs.join(name.trim_start_matches('/'))).unwrap();
        assert_eq!(
            file["checksums"][0]["checksumValue"].as_str().unwrap(),
            hex(&sha2::Sha256::digest(&bytes)),
            "{triple}: {name}"
        );
    }
}

/// The arm64 image's own busybox and binary, run under qemu-aarch64-static
/// (this machine has no binfmt_misc: an emulated `sh` could not exec an
/// arm64 program, so each is run directly).
fn arm64_image_runs_under_qemu(rootfs: &Path, config: &str) {
    let qemu = Path::new("/usr/bin/qemu-aarch64-static");
    assert!(
        qemu.is_file(),
        "qemu-user-static is missing: scripts/stack.sh install installs it"
    );
    let run = |args: &[&std::ffi::OsStr]| {
        let o = Command::new(qemu).args(args).env_clear().output().unwrap();
        (
            o.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        )
    };
    let busybox = rootfs.join("bin/busybox");
    let (code, out) = run(&[
        busybox.as_os_str(),
        "echo".as_ref(),
        "arm64-busybox".as_ref(),
    ]);
    assert_eq!((code, out.trim()), (Some(0), "arm64-busybox"));
    let binary = rootfs.join("usr/local/bin/runner-identity");
    let (code, out) = run(&[binary.as_os_str(), "--version".as_ref()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("runner-identity "), "{out}");
    let file = rootfs.join("work.yaml");
    std::fs::write(&file, config).unwrap();
    let (code, out) = run(&[
        binary.as_os_str(),
        "plan".as_ref(),
        "-c".as_ref(),
        file.as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("kind: ServiceAccount"), "{out}");
}

/// action/Dockerfile, for engines that have one, builds the same image: its
/// final stage's user, entrypoint, command and PATH are the image's, and
/// the files it copies are the image's files (busybox is its base image).
fn the_dockerfile_describes_this_image(config: &serde_json::Value, rootfs: &Path) {
    let dockerfile = std::fs::read_to_string(root().join("action/Dockerfile")).unwrap();
    let joined = dockerfile.replace("\\\n", " ");
    let lines: Vec<&str> = joined
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let last_from = lines.iter().rposition(|l| l.starts_with("FROM ")).unwrap();
    let (mut copied, mut seen) = (std::collections::BTreeSet::new(), 0);
    for line in &lines[last_from + 1..] {
        let (instruction, rest) = line.split_once(' ').unwrap();
        let json = |text: &str| serde_json::from_str::<serde_json::Value>(text).unwrap();
        match instruction {
            "USER" => assert_eq!(config["config"]["User"], rest, "USER"),
            "ENTRYPOINT" => assert_eq!(config["config"]["Entrypoint"], json(rest), "ENTRYPOINT"),
            "CMD" => assert_eq!(config["config"]["Cmd"], json(rest), "CMD"),
            "ENV" => {
                let env = config["config"]["Env"].as_array().unwrap();
                assert!(env.iter().any(|e| e == rest), "ENV {rest}: {env:?}");
            }
            "COPY" => {
                copied.insert(rest.split_whitespace().last().unwrap().to_owned());
            }
            _ => continue,
        }
        seen += 1;
    }
    assert!(seen >= 6, "the final stage's instructions were read");
    let mut files = std::collections::BTreeSet::new();
    let mut stack = vec![rootfs.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let path = entry.path();
                let inside = format!("/{}", path.strip_prefix(rootfs).unwrap().display());
                if inside != "/bin/busybox" {
                    files.insert(inside);
                }
            }
        }
    }
    assert_eq!(
        files, copied,
        "the image's files and the Dockerfile's COPYs"
    );
}

/// The docs' Dockerfile copies files out of this image: each must be there,
/// and be executable.
fn the_files_the_docs_copy_from_the_image_exist(rootfs: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let reference = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let mut copied = 0;
    for line in reference.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let from_us = words
            .iter()
            .any(|w| w.starts_with("--from=") && w.contains("runner-identity/runner-identity"));
        if words.first() != Some(&"COPY") || !from_us {
            continue;
        }
        // COPY --from=IMAGE SRC... DEST
        for source in &words[2..words.len() - 1] {
            let file = rootfs.join(source.trim_start_matches('/'));
            let mode = std::fs::metadata(&file)
                .unwrap_or_else(|e| panic!("docs/reference.md copies {source}: {e}"))
                .permissions()
                .mode();
            assert!(mode & 0o111 != 0, "{source} is not executable");
            copied += 1;
        }
    }
    assert!(copied >= 2, "{copied} files copied from the image");
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
        let index = build_layout(&dir.path().join(name), epoch);
        index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == "index")
            .expect("the layout names the multi-arch index")["digest"]
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

    // The image's file systems: built, pushed, pulled back by digest, unpacked.
    let dir = tempfile::tempdir().unwrap();
    let Pulled {
        amd64: rootfs,
        arm64,
    } = pulled_image(dir.path());
    assert_eq!(
        std::fs::read(rootfs.join("usr/local/bin/runner-identity")).unwrap(),
        std::fs::read(image_binary()).unwrap(),
        "the amd64 image holds the binary it was built from"
    );
    image_sbom_lists_the_build_graph(&rootfs, "x86_64-unknown-linux-musl");
    image_sbom_lists_the_build_graph(&arm64, "aarch64-unknown-linux-musl");
    the_files_the_docs_copy_from_the_image_exist(&rootfs);
    the_files_the_docs_copy_from_the_image_exist(&arm64);
    arm64_image_runs_under_qemu(&arm64, &text);

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
