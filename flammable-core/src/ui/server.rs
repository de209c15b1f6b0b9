//! `ui`: the command's arguments, the HTTP server (axum on tokio) and its routes.

use super::state::AppState;
use super::{api, asset, files, manage, pages};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::web::listen::{self, parse_host};
use crate::web::security::{self, Access};
use crate::web::server as web_server;
use crate::web::shutdown;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::sync::Arc;

/// `ui`: where to listen and who may read.
#[derive(Args, Debug, Clone)]
pub struct UiArgs {
    /// The address to listen on; an address other than loopback needs a token.
    #[arg(long, default_value = "127.0.0.1", value_parser = parse_host)]
    pub host: IpAddr,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 7000)]
    pub port: u16,
    /// Open the page in the default web browser.
    #[arg(long)]
    pub open: bool,
    /// Memory for the metrics kept parsed between requests, in MiB (28 bytes a point: the
    /// default holds about 38 million points); past it, the runs looked at longest ago are
    /// read again when next asked for.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub cache_mib: u64,
    /// The token readers must give (default: $FLAMMABLE_UI_TOKEN; generated and printed
    /// when listening beyond this machine).
    #[arg(long, env = "FLAMMABLE_UI_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// How long a client has to send a request's head, how many may be connected, and how long
/// a shutdown waits for the requests in flight.
const DEADLINES: web_server::Deadlines = web_server::Deadlines {
    header_read: std::time::Duration::from_secs(10),
    shutdown: std::time::Duration::from_secs(5),
    max_connections: 1024,
};

/// Serves the browser over `store` until Ctrl-C or SIGTERM (exit 0; a second one exits at
/// once). Prints the address (with the token when there is one) on stdout.
pub fn run(store: &Store, args: UiArgs, quiet: bool) -> Result<ExitCode> {
    let loopback = args.host.is_loopback();
    let token = listen::token_for(args.token.clone(), args.host)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::msg(format!("cannot start the web server's runtime: {e}")))?;
    runtime.block_on(async move {
        let address = SocketAddr::new(args.host, args.port);
        let listener = listen::bind(address).await?;
        let bound = listener
            .local_addr()
            .map_err(|e| Error::msg(format!("cannot read the address listened on: {e}")))?;
        let state = Arc::new(AppState::new(
            store.clone(),
            Access {
                token: token.clone(),
                loopback,
                open_paths: &[],
                cookie: security::cookie_name("ui", bound.port()),
            },
            args.cache_mib.saturating_mul(1 << 20) / super::cache::POINT_BYTES,
            security::generate_token()
                .map_err(|e| Error::msg(format!("cannot draw the pages' CSRF token: {e}")))?,
        ));
        // Read the store while the first page is being asked for.
        let warm = state.clone();
        tokio::task::spawn_blocking(move || warm.index.snapshot());
        let url = listen::url(bound, token.as_deref());
        listen::announce(&url);
        if !quiet {
            crate::util::stderr::errln!(
                "browsing the runs of {}; Ctrl-C stops",
                store.root().display()
            );
        }
        if args.open {
            open_browser(&url);
        }
        let stop = async {
            shutdown::stop_signal().await;
            tokio::spawn(shutdown::exit_on_second_signal());
        };
        let stopped =
            web_server::serve(listener, router(state), DEADLINES, Default::default(), stop).await;
        if stopped.dropped > 0 && !quiet {
            crate::util::stderr::errln!(
                "stopped: {} connection(s) still open after {} s dropped",
                stopped.dropped,
                DEADLINES.shutdown.as_secs()
            );
        }
        Ok::<(), Error>(())
    })?;
    // Blocking reads of the store still running are not waited for past the deadline.
    runtime.shutdown_timeout(DEADLINES.shutdown);
    Ok(ExitCode::SUCCESS)
}

fn open_browser(url: &str) {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else if cfg!(windows) {
        "explorer"
    } else {
        "xdg-open"
    };
    if let Err(e) = std::process::Command::new(opener)
        .arg(url)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
    {
        crate::util::stderr::errln!("warning: cannot open a browser ({opener}: {e}); open {url}");
    }
}

/// Every route of the browser. The pages show a failure as a page; the API, the chart, the
/// fragments the pages' script fetches and the downloads answer JSON.
pub fn router(state: Arc<AppState>) -> Router {
    let pages = Router::new()
        .route("/", get(pages::runs))
        .route("/run/{id}", get(pages::run))
        .route("/run/{id}/code", get(pages::code_tree))
        .route("/run/{id}/code/{*path}", get(pages::code_file))
        .route("/compare", get(pages::compare))
        .route("/parallel", get(pages::parallel))
        .route("/trash", get(pages::trash))
        .route("/runs/edit", post(manage::edit))
        .route("/runs/delete", post(manage::delete))
        .route("/runs/restore", post(manage::restore))
        .layer(axum::extract::DefaultBodyLimit::max(manage::MAX_FORM_BYTES))
        .layer(axum::middleware::map_response_with_state(
            state.clone(),
            pages::errors_as_pages,
        ));
    Router::new()
        .merge(pages)
        .route("/rows", get(pages::rows))
        .route("/run/{id}/live", get(pages::live))
        .route("/chart", get(api::chart))
        .route("/series.csv", get(api::series_csv))
        .route("/runs.csv", get(api::runs_csv))
        .route("/files/{id}/{*path}", get(files::download))
        .route("/assets/{name}", get(asset::serve))
        .route("/api/runs", get(api::runs))
        .route("/api/runs/{id}", get(api::run))
        .route("/api/runs/{id}/live", get(api::live))
        .route("/api/runs/{id}/series", get(api::series))
        .route("/api/runs/{id}/log", get(api::log))
        .route("/api/runs/{id}/files", get(api::files))
        .route("/api/runs/{id}/tree", get(api::tree))
        .route("/api/runs/{id}/code/{*path}", get(api::code))
        .route("/api/runs/{id}/changes", get(api::changes))
        .route("/api/diff", get(api::diff))
        .route("/openapi.json", get(super::openapi::ui_document))
        .fallback(not_found)
        .layer(security::GuardLayer::new(state.access.clone()))
        .with_state(state)
}

async fn not_found() -> impl IntoResponse {
    (StatusCode::NOT_FOUND, "no such page\n")
}
