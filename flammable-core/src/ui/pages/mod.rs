//! The HTML pages, one module per family: the runs, a run, its code, the comparison of runs;
//! and the frame and formatting they share. Rendered on the server with maud (every value
//! escaped); the script only adds hover, zoom and live updates.

mod charts;
mod code;
mod compare;
mod layout;
mod parallel;
mod run;
mod runs;
mod trash;

pub use code::{code_file, code_tree};
pub use compare::compare;
pub use layout::run_href;
pub use parallel::parallel;
pub use run::{live, run};
pub use runs::{rows, runs};
pub use trash::trash;

use super::chart::Size;
use super::state::AppState;
use crate::web::AppError;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The size of a chart on a page.
const CHART: Size = Size {
    width: 600,
    height: 240,
};

/// The layer of the page routes: a handler's [`AppError`] (sent as JSON, and carried in the
/// response's extensions) is shown as a page, with its status.
pub async fn errors_as_pages(State(state): State<Arc<AppState>>, response: Response) -> Response {
    match response.extensions().get::<AppError>() {
        Some(error) => (
            error.status,
            layout::error_page(&layout::store_text(&state), error),
        )
            .into_response(),
        None => response,
    }
}
