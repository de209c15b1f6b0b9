//! The runs table's request — its query string (`q`, `sort`, `order`, `page`, `per_page`)
//! and the links that change it — and the page of runs it selects.

use super::columns::{Agg, Names};
use super::group::{group, Group, GroupBy};
use super::index::{Snapshot, Summary};
use super::params::{from_text, Count, Flag};
use super::query::{sort, Filter, SortKey};
use crate::web::AppError;
use std::sync::Arc;

/// Which way a column is sorted: `asc`, `desc`, or (empty) the column's own way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Order {
    /// The column's own way: newest first for the start time, else smallest first.
    #[default]
    Default,
    /// Smallest first.
    Asc,
    /// Largest first.
    Desc,
}

impl std::str::FromStr for Order {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "" => Ok(Order::Default),
            "asc" => Ok(Order::Asc),
            "desc" => Ok(Order::Desc),
            _ => Err(format!("`{text}`: use asc or desc")),
        }
    }
}

/// The runs table's query string: `q`, `sort`, `order`, `page`, `per_page`.
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// The filter's text.
    pub q: String,
    /// The sort key.
    #[serde(deserialize_with = "from_text")]
    pub sort: SortKey,
    /// The order.
    #[serde(deserialize_with = "from_text")]
    pub order: Order,
    /// The page, from 1.
    #[serde(deserialize_with = "from_text")]
    pub page: Count<1, { u64::MAX }>,
    /// Rows a page (default 100).
    #[serde(deserialize_with = "from_text")]
    pub per_page: Count<1, 1000>,
    /// What runs are grouped by (see [`GroupBy`]).
    #[serde(deserialize_with = "from_text")]
    pub group: GroupBy,
    /// What a metric's cell holds.
    #[serde(deserialize_with = "from_text")]
    pub agg: Agg,
    /// The columns chosen (metrics and hyperparameters).
    #[serde(deserialize_with = "from_text")]
    pub cols: Names,
    /// Only the columns whose values differ among the page's rows.
    #[serde(deserialize_with = "from_text")]
    pub differ: Flag,
}

/// The runs table's request: filter, sort, page.
#[derive(Clone, Debug, PartialEq)]
pub struct ListRequest {
    /// The filter's text.
    pub filter: String,
    /// The sort key.
    pub sort: SortKey,
    /// Largest first.
    pub descending: bool,
    /// The page, from 1.
    pub page: usize,
    /// Rows a page (groups, when grouped).
    pub per_page: usize,
    /// What runs are grouped by, as asked (see [`ListRequest::grouping`]).
    pub group: GroupBy,
    /// What a metric's cell holds.
    pub agg: Agg,
    /// The columns chosen (none: the table's own choice).
    pub cols: Vec<String>,
    /// Only the columns whose values differ.
    pub differ: bool,
}

impl From<ListQuery> for ListRequest {
    fn from(q: ListQuery) -> Self {
        let descending = match q.order {
            Order::Default => q.sort == SortKey::Started,
            Order::Asc => false,
            Order::Desc => true,
        };
        ListRequest {
            filter: q.q,
            sort: q.sort,
            descending,
            page: usize::try_from(q.page.or(1)).unwrap_or(usize::MAX),
            per_page: q.per_page.or(100) as usize,
            group: q.group,
            agg: q.agg,
            cols: q.cols.0,
            differ: q.differ.0,
        }
    }
}

impl ListRequest {
    /// What the table is grouped by, if it is: as asked, or by default a sweep's runs by
    /// everything but the seed.
    pub fn grouping(&self) -> Option<GroupBy> {
        self.group.resolve(&self.filter)
    }

    /// The query string of this request with `page` (and, when given, sort) replaced.
    pub fn link(&self, page: usize, sort: Option<(&SortKey, bool)>) -> String {
        let (key, desc) = sort.unwrap_or((&self.sort, self.descending));
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("q", &self.filter)
            .append_pair("sort", &key.text())
            .append_pair("order", if desc { "desc" } else { "asc" });
        if page > 1 {
            q.append_pair("page", &page.to_string());
        }
        if self.per_page != 100 {
            q.append_pair("per_page", &self.per_page.to_string());
        }
        if self.group != GroupBy::Default {
            q.append_pair("group", &self.group.text());
        }
        if self.agg != Agg::Final {
            q.append_pair("agg", self.agg.text());
        }
        if !self.cols.is_empty() {
            q.append_pair("cols", &self.cols.join(","));
        }
        if self.differ {
            q.append_pair("differ", "1");
        }
        format!("?{}", q.finish())
    }
}

/// One page of the runs that match a request.
pub struct Selection {
    /// The page's rows (when grouped: the runs of the page's groups, group by group).
    pub rows: Vec<Arc<Summary>>,
    /// The page's groups, when grouped.
    pub groups: Option<Vec<Group>>,
    /// How many runs matched.
    pub matched: usize,
    /// The page count.
    pub pages: usize,
}

/// Every run of `snapshot` that `request`'s filter matches, sorted; a filter that cannot be
/// read, or names what no run has, is a 400 saying why.
pub fn matching(snapshot: &Snapshot, request: &ListRequest) -> Result<Vec<Arc<Summary>>, AppError> {
    let filter = Filter::parse(&request.filter).map_err(AppError::bad)?;
    filter
        .check_names(&snapshot.metric_names, &snapshot.hyper_names)
        .and_then(|()| filter.check_tags(&snapshot.tag_names))
        .map_err(AppError::bad)?;
    let mut rows: Vec<&Summary> = snapshot
        .runs
        .iter()
        .map(Arc::as_ref)
        .filter(|r| filter.matches(r))
        .collect();
    sort(&mut rows, &request.sort, request.descending);
    // Back from the sorted summaries to their shared handles (by id: a map look-up).
    Ok(rows
        .iter()
        .filter_map(|r| snapshot.find(&r.id).cloned())
        .collect())
}

/// Filters, sorts, groups and pages `snapshot` by `request` (see [`matching`]).
pub fn select(snapshot: &Snapshot, request: &ListRequest) -> Result<Selection, AppError> {
    request
        .group
        .check_names(&snapshot.hyper_names)
        .map_err(|e| AppError::bad(format!("group: {e}")))?;
    // Cells of series may name any series: only final values are checked for typos.
    if request.agg == Agg::Final {
        Names(request.cols.clone())
            .check(&snapshot.metric_names, &snapshot.hyper_names)
            .map_err(|e| AppError::bad(format!("cols: {e}")))?;
    }
    let rows = matching(snapshot, request)?;
    let matched = rows.len();
    let start = (request.page - 1).saturating_mul(request.per_page);
    let Some(by) = request.grouping() else {
        let page = rows
            .into_iter()
            .skip(start)
            .take(request.per_page)
            .collect();
        return Ok(Selection {
            rows: page,
            groups: None,
            matched,
            pages: matched.div_ceil(request.per_page).max(1),
        });
    };
    let mut groups = group(&rows, &by);
    // Sorted by a metric: by the groups' means (the runs were sorted; groups keep that order
    // otherwise).
    if let SortKey::Metric(m) = &request.sort {
        let mean = |g: &Group| g.metrics.get(m).map(|s| s.mean);
        groups.sort_by(|a, b| match (mean(a), mean(b)) {
            (Some(x), Some(y)) => {
                let o = x.total_cmp(&y);
                if request.descending {
                    o.reverse()
                } else {
                    o
                }
            }
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        });
    }
    let pages = groups.len().div_ceil(request.per_page).max(1);
    let page: Vec<Group> = groups
        .into_iter()
        .skip(start)
        .take(request.per_page)
        .collect();
    Ok(Selection {
        rows: page.iter().flat_map(|g| g.runs.iter().cloned()).collect(),
        groups: Some(page),
        matched,
        pages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_requests_read_their_defaults_and_links() {
        let r = ListRequest::from(ListQuery {
            sort: SortKey::Metric("loss".into()),
            page: Count(Some(2)),
            ..ListQuery::default()
        });
        assert!(!r.descending);
        assert_eq!((r.page, r.per_page), (2, 100));
        assert_eq!(r.link(3, None), "?q=&sort=metric%3Aloss&order=asc&page=3");
        let grouped = ListRequest {
            group: GroupBy::AllButSeed,
            ..r.clone()
        };
        assert_eq!(
            grouped.link(1, None),
            "?q=&sort=metric%3Aloss&order=asc&group=*"
        );
        assert!(ListRequest::from(ListQuery::default()).descending);
        assert_eq!("up".parse::<Order>().unwrap_err(), "`up`: use asc or desc");
    }
}
