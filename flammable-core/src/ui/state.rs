//! What every request of the browser shares: the run index, the access rules, the
//! highlighter.

use super::cache::SeriesCache;
use super::highlight::Highlighter;
use super::index::RunIndex;
use crate::store::Store;
use crate::web::security::Access;
use std::sync::OnceLock;

/// The browser's shared state.
pub struct AppState {
    /// The runs.
    pub index: RunIndex,
    /// Who may read.
    pub access: Access,
    /// The series read so far.
    pub series: SeriesCache,
    /// The token the pages' forms carry, which a write must give back (see
    /// [`super::manage`]): random, of this process.
    pub csrf: String,
    highlighter: OnceLock<Highlighter>,
}

impl AppState {
    /// The state of a browser over `store`, keeping up to `cache_points` points of series
    /// parsed, whose pages' forms carry `csrf`.
    pub fn new(store: Store, access: Access, cache_points: u64, csrf: String) -> Self {
        AppState {
            index: RunIndex::new(store),
            access,
            series: SeriesCache::new(cache_points),
            csrf,
            highlighter: OnceLock::new(),
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        self.index.store()
    }

    /// The syntax highlighter, loaded on first use (its grammars take a few tens of
    /// milliseconds to load).
    pub fn highlighter(&self) -> &Highlighter {
        self.highlighter.get_or_init(Highlighter::new)
    }
}
