//! Flammable's integration tests, linked into one binary: real runs in temporary folders,
//! the digits example as a real subprocess.

// Test code states its expectations with unwrap and assert.
#![allow(clippy::unwrap_used)]

mod api;
mod bisect;
mod browser;
mod cluster;
mod code_dir;
mod common;
mod continued;
mod conveniences;
mod cross_host;
mod defects;
mod digits;
mod distributed;
mod export;
mod export_mlflow;
mod faults;
mod follow;
mod hostile;
mod http;
mod hyperparameters;
mod loops;
mod metrics;
mod netns;
mod openapi;
mod readme;
mod remote;
mod runs;
mod serve;
mod serve_oip;
mod snapshot;
mod snapshot_props;
mod storage;
mod sweep;
mod ui;
mod ui_charts;
mod ui_manage;
mod watch;
mod webdriver;
