//! The integration tests, one crate so the helpers compile once:
//! tier 2 against the real local stack (kube-apiserver + etcd, moto,
//! wiremock), tier 3 the built binary run as a user or the action runner
//! runs it. The stack tests fail, never skip, when the stack is not running
//! (`scripts/test.sh` starts it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

mod apiserver;
mod apply;
mod arc;
mod aws;
mod bootstrap;
mod chart;
mod charts;
mod cli;
mod config_errors;
mod controller;
mod docs;
mod doctor;
mod github;
mod github_oidc;
mod hooks;
mod image;
mod isolation;
mod network;
mod runner_groups;
mod verify;
