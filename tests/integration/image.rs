//! The action image without a Docker engine: the static binary
//! `scripts/build-image-binary.sh` builds (as `action/Dockerfile` does) in a
//! root file system holding only busybox, the CA bundle and that binary,
//! started the way runner-container-hooks starts a container step (`sh -e`
//! on a script ending in `exec env K=V … <entrypoint> <args>`), as the
//! image's user 1001 with the pod's fsGroup, against the real local stack.

use std::os::unix::fs::{PermissionsExt, chown, symlink};
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

fn copy(from: &Path, to: &Path, mode: u32) {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn the_image_runs_verify_job_as_the_hooks_start_a_step() {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "busybox-static is missing: scripts/stack.sh install installs it"
    );
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

    // The image's file system.
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    copy(busybox, &rootfs.join("bin/busybox"), 0o755);
    for applet in ["sh", "env", "tail", "cat"] {
        symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
    }
    let binary = image_binary();
    copy(
        &binary,
        &rootfs.join("usr/local/bin/runner-identity"),
        0o755,
    );
    let ca = Path::new("/etc/ssl/certs/ca-certificates.crt");
    if ca.is_file() {
        copy(ca, &rootfs.join("etc/ssl/certs/ca-certificates.crt"), 0o644);
    }
    let image_bytes: u64 = [
        "bin/busybox",
        "usr/local/bin/runner-identity",
        "etc/ssl/certs/ca-certificates.crt",
    ]
    .iter()
    .filter_map(|p| std::fs::metadata(rootfs.join(p)).ok())
    .map(|m| m.len())
    .sum();
    eprintln!(
        "image binary {} bytes; image files {image_bytes} bytes",
        std::fs::metadata(&binary).unwrap().len()
    );
    assert!(
        image_bytes < IMAGE_BUDGET_BYTES,
        "{image_bytes} bytes is over the 20 MB budget"
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
