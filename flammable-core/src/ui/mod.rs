//! The experiment browser, `ui`: a local web app over the run store that shows runs, their
//! curves, hyperparameters and code, and compares them (feature `ui`; without it, `ui` says
//! how to get it).
//!
//! It writes only what a user asks for from a page (`manage.rs`: tags, notes, messages, runs
//! to the trash and back), never the repository. Pages are rendered on the
//! server (maud, `pages/`), series are downsampled on the server, and a small script of our
//! own adds hover, zoom and live updates. What is read (`read.rs`, over the run index of
//! `index.rs`) is apart from how it is sent: as pages, or as JSON (`api.rs`).

// Compiled in every build, so that its test runs where the feature is on too.
#[cfg_attr(feature = "ui", allow(dead_code))]
mod disabled;
#[cfg(not(feature = "ui"))]
pub use disabled::{run, UiArgs};

#[cfg(feature = "ui")]
mod server;
#[cfg(feature = "ui")]
pub use server::{run, UiArgs};

#[cfg(feature = "ui")]
mod aggregate;
#[cfg(feature = "ui")]
mod api;
#[cfg(feature = "ui")]
mod asset;
#[cfg(feature = "ui")]
mod cache;
#[cfg(feature = "ui")]
mod chart;
#[cfg(feature = "ui")]
mod columns;
#[cfg(feature = "ui")]
mod csv;
#[cfg(feature = "ui")]
mod files;
#[cfg(feature = "ui")]
mod group;
#[cfg(feature = "ui")]
mod highlight;
#[cfg(feature = "ui")]
mod index;
#[cfg(feature = "ui")]
mod legend;
#[cfg(feature = "ui")]
mod listing;
#[cfg(feature = "ui")]
mod manage;
#[cfg(feature = "ui")]
mod openapi;
#[cfg(feature = "ui")]
mod pages;
#[cfg(feature = "ui")]
mod parallel;
#[cfg(feature = "ui")]
mod params;
#[cfg(feature = "ui")]
mod patch;
#[cfg(feature = "ui")]
mod query;
#[cfg(feature = "ui")]
mod read;
#[cfg(feature = "ui")]
mod series;
#[cfg(feature = "ui")]
mod smooth;
#[cfg(feature = "ui")]
mod state;
#[cfg(feature = "ui")]
mod view;

/// What `remote ls` and `export` filter runs with: the browser's summary of a record and its
/// filter.
#[cfg(feature = "remote")]
pub(crate) use index::summary_of;
#[cfg(feature = "export")]
pub(crate) use index::{summarize, Summary};
#[cfg(any(feature = "remote", feature = "export"))]
pub(crate) use query::Filter;

/// What a binary built without the `ui` feature says when asked for the browser.
pub const UNAVAILABLE: &str =
    "this binary was built without the experiment browser: run `flammable ui` \
     (`cargo install flammable-cli`), or build the task with flammable's `ui` feature";
