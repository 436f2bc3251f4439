//! The one way the tests run the built binary (ripgrep's `tests/util.rs`
//! shape): [`command`] is the binary in the repository root with no proxy
//! of the developer's environment; [`ri`] builds, runs and checks a run.

use std::ffi::OsStr;
use std::process::{Command, Output};

/// The variables of the developer's shell that would change where the
/// binary connects.
const PROXY_VARIABLES: [&str; 6] = [
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// The binary, run from the repository root, without proxy variables.
pub fn command() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runner-identity"));
    cmd.current_dir(super::root());
    for name in PROXY_VARIABLES {
        cmd.env_remove(name);
    }
    cmd
}

/// A run of the binary being put together.
pub struct Ri {
    cmd: Command,
}

/// `runner-identity ARGS`, without `KUBECONFIG` (tests name their
/// kubeconfig) or proxy variables.
pub fn ri<S: AsRef<OsStr>>(args: &[S]) -> Ri {
    let mut cmd = command();
    cmd.args(args).env_remove("KUBECONFIG");
    Ri { cmd }
}

impl Ri {
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Ri {
        self.cmd.env(key, value);
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(mut self, vars: &[(K, V)]) -> Ri {
        for (k, v) in vars {
            self.cmd.env(k, v);
        }
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Ri {
        self.cmd.env_remove(key);
        self
    }

    /// Runs it in `dir`.
    pub fn cwd(mut self, dir: impl AsRef<std::path::Path>) -> Ri {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs it to the end.
    pub fn run(mut self) -> Ran {
        Ran::from(self.cmd.output().expect("the binary runs"))
    }
}

/// A finished run: its exit code and output as text.
#[derive(Debug)]
pub struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Ran {
        Ran {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Ran {
    /// Fails the test, showing stderr, unless the run exited with `code`.
    #[track_caller]
    pub fn expect(self, code: i32) -> Ran {
        assert_eq!(
            self.code,
            Some(code),
            "exit code; stderr:\n{}\nstdout:\n{}",
            self.stderr,
            self.stdout
        );
        self
    }
}
