//! The `impl` block → a `TaskDef`: each step attribute read, checked for its arguments and
//! removed from the function it sits on (the rest of the block is kept as written).

use crate::errors::Errors;
use syn::{Attribute, Ident, ImplItem, ItemImpl, Meta, Signature};

/// Which data a `#[data(..)]` step gives.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DataKind {
    Train,
    Test,
    Validation,
}

/// Which phase a `#[prepare(..)]` step serves.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Phase {
    Train,
    Test,
    Eval,
}

/// Which serving step a `#[serve(..)]` function is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ServeStep {
    Decode,
    Encode,
    Collate,
    Uncollate,
}

/// The end of what an `#[on(..)]` hook runs at: a step, an epoch, a validation, training.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum HookPoint {
    Step,
    Epoch,
    Validation,
    Train,
}

impl HookPoint {
    /// The `Task` method that runs the hooks of this point.
    pub fn method(self) -> &'static str {
        match self {
            HookPoint::Step => "on_step_end",
            HookPoint::Epoch => "on_epoch_end",
            HookPoint::Validation => "on_validation_end",
            HookPoint::Train => "on_train_end",
        }
    }

    /// As written in the attribute.
    pub fn name(self) -> &'static str {
        match self {
            HookPoint::Step => "step_end",
            HookPoint::Epoch => "epoch_end",
            HookPoint::Validation => "validation_end",
            HookPoint::Train => "train_end",
        }
    }
}

/// What a step attribute says a function is.
#[derive(Clone, PartialEq, Eq, Debug)]
pub enum Kind {
    Init,
    Data(DataKind),
    Forward,
    Loss,
    Metric,
    /// `#[metric(name)]`: built-in pooled metric `name` of what the function returns.
    BuiltInMetric(String),
    Optimizer,
    Prepare(Phase),
    EvalLoad,
    EvalStore,
    Postprocess,
    Serve(ServeStep),
    /// `#[on(point)]`: one of possibly several hooks of a point, run in declaration order.
    On(HookPoint),
    /// `#[step(name)]`: replaces the trait method `name`, with its exact signature.
    Step(String),
}

/// One annotated function.
pub struct Step {
    pub kind: Kind,
    /// The attribute, for errors about the step as a whole.
    pub attr: Attribute,
    pub sig: Signature,
}

pub struct TaskDef {
    /// The user's block, step attributes removed.
    pub item: ItemImpl,
    pub steps: Vec<Step>,
}

/// The attribute names that are steps.
pub const STEP_ATTRIBUTES: &[&str] = &[
    "init",
    "data",
    "forward",
    "loss",
    "metric",
    "optimizer",
    "prepare",
    "eval",
    "postprocess",
    "serve",
    "on",
    "step",
];

/// The pooled metrics `#[metric(NAME)]` computes (flammable-core's `train::pooled::BUILT_IN`;
/// a misspelled name is then a compile error at the attribute), and whether larger is better.
pub const BUILT_IN_METRICS: &[&str] = &[
    "accuracy",
    "top2_accuracy",
    "top3_accuracy",
    "top5_accuracy",
    "precision_macro",
    "precision_micro",
    "recall_macro",
    "recall_micro",
    "f1_macro",
    "f1_micro",
    "precision",
    "recall",
    "f1",
    "confusion",
    "mse",
    "rmse",
    "mae",
    "r2",
];

/// The `Task` methods `#[step(..)]` can replace. Kept in the order of the trait.
pub const TRAIT_STEPS: &[&str] = &[
    "train_data",
    "validation_data",
    "test_data",
    "forward",
    "loss",
    "losses",
    "optimizer",
    "prepare_train",
    "forward_train",
    "backward",
    "iteration",
    "epoch",
    "every_n_epochs",
    "validate",
    "train",
    "fit",
    "prepare_test",
    "forward_test",
    "evaluate_metrics",
    "reduce",
    "test_on",
    "test",
    "load_sample",
    "prepare_eval",
    "forward_eval",
    "postprocess",
    "store_result",
    "eval",
    "eval_path",
    "collate",
    "uncollate",
    "encode_response",
    "serve_batch",
    "save_model",
    "load_model",
];

/// Attributes of the language and of rustc's tools that may sit on a method beside ours.
const BUILTIN_ATTRIBUTES: &[&str] = &[
    "doc",
    "allow",
    "warn",
    "deny",
    "forbid",
    "expect",
    "cfg",
    "cfg_attr",
    "inline",
    "cold",
    "must_use",
    "deprecated",
    "track_caller",
    "no_mangle",
    "export_name",
    "link_section",
    "target_feature",
    "automatically_derived",
];

pub fn parse(mut item: ItemImpl, errors: &mut Errors) -> TaskDef {
    let mut steps = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(f) = impl_item else { continue };
        let mut kept = Vec::with_capacity(f.attrs.len());
        for attr in f.attrs.drain(..) {
            match step_kind(&attr) {
                Ok(Some(kind)) => steps.push(Step {
                    kind,
                    attr: attr.clone(),
                    sig: f.sig.clone(),
                }),
                Ok(None) => kept.push(attr),
                Err(e) => errors.push(e),
            }
        }
        f.attrs = kept;
    }
    TaskDef { item, steps }
}

/// `Some(kind)` for a step attribute, `None` for any other attribute, an error for a
/// misspelled or misused step attribute.
fn step_kind(attr: &Attribute) -> syn::Result<Option<Kind>> {
    let path = attr.path();
    // `#[flammable::loss]`: step attributes are read by #[flammable::task], not macros of
    // their own, so they have no path.
    if path.segments.len() > 1 {
        let last = path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let first = path
            .segments
            .first()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        if first == "flammable" && STEP_ATTRIBUTES.contains(&last.as_str()) {
            return Err(syn::Error::new_spanned(
                path,
                format!("write #[{last}]: inside #[flammable::task], step attributes are written without a path"),
            ));
        }
    }
    let Some(name) = path.get_ident().map(Ident::to_string) else {
        return Ok(None);
    };
    if BUILTIN_ATTRIBUTES.contains(&name.as_str()) {
        return Ok(None);
    }
    let no_args = |kind: Kind| -> syn::Result<Option<Kind>> {
        match &attr.meta {
            Meta::Path(_) => Ok(Some(kind)),
            _ => Err(syn::Error::new_spanned(
                &attr.meta,
                format!("#[{name}] takes no arguments: write #[{name}]"),
            )),
        }
    };
    match name.as_str() {
        "init" => no_args(Kind::Init),
        "forward" => no_args(Kind::Forward),
        "loss" => no_args(Kind::Loss),
        "metric" if matches!(attr.meta, Meta::Path(_)) => Ok(Some(Kind::Metric)),
        "metric" => {
            let arg = one_arg(attr, "metric", "the built-in metrics, e.g. f1_macro")?;
            let metric = arg.to_string();
            if BUILT_IN_METRICS.contains(&metric.as_str()) {
                Ok(Some(Kind::BuiltInMetric(metric)))
            } else {
                Err(syn::Error::new(
                    arg.span(),
                    format!(
                        "no built-in metric `{metric}`{}; they are {} (or write #[metric] on a function that computes it)",
                        suggestion(&metric, BUILT_IN_METRICS),
                        BUILT_IN_METRICS.join(", ")
                    ),
                ))
            }
        }
        "optimizer" => no_args(Kind::Optimizer),
        "postprocess" => no_args(Kind::Postprocess),
        "data" => {
            let arg = one_arg(attr, "data", "train, test or validation")?;
            match arg.to_string().as_str() {
                "train" => Ok(Some(Kind::Data(DataKind::Train))),
                "test" => Ok(Some(Kind::Data(DataKind::Test))),
                "validation" => Ok(Some(Kind::Data(DataKind::Validation))),
                other => Err(syn::Error::new(
                    arg.span(),
                    format!("unknown data `{other}`: write #[data(train)], #[data(test)] or #[data(validation)]"),
                )),
            }
        }
        "prepare" => {
            let arg = one_arg(attr, "prepare", "train, test or eval")?;
            match arg.to_string().as_str() {
                "train" => Ok(Some(Kind::Prepare(Phase::Train))),
                "test" => Ok(Some(Kind::Prepare(Phase::Test))),
                "eval" => Ok(Some(Kind::Prepare(Phase::Eval))),
                other => Err(syn::Error::new(
                    arg.span(),
                    format!("unknown phase `{other}`: write #[prepare(train)], #[prepare(test)] or #[prepare(eval)]"),
                )),
            }
        }
        "eval" => {
            let arg = one_arg(attr, "eval", "load or store")?;
            match arg.to_string().as_str() {
                "load" => Ok(Some(Kind::EvalLoad)),
                "store" => Ok(Some(Kind::EvalStore)),
                other => Err(syn::Error::new(
                    arg.span(),
                    format!("unknown eval step `{other}`: write #[eval(load)] or #[eval(store)]"),
                )),
            }
        }
        "on" => {
            let arg = one_arg(
                attr,
                "on",
                "step_end, epoch_end, validation_end or train_end",
            )?;
            match arg.to_string().as_str() {
                "step_end" => Ok(Some(Kind::On(HookPoint::Step))),
                "epoch_end" => Ok(Some(Kind::On(HookPoint::Epoch))),
                "validation_end" => Ok(Some(Kind::On(HookPoint::Validation))),
                "train_end" => Ok(Some(Kind::On(HookPoint::Train))),
                other => Err(syn::Error::new(
                    arg.span(),
                    format!(
                        "unknown hook point `{other}`{}: write #[on(step_end)], #[on(epoch_end)], #[on(validation_end)] or #[on(train_end)]",
                        suggestion(other, &["step_end", "epoch_end", "validation_end", "train_end"])
                    ),
                )),
            }
        }
        "serve" => {
            let arg = one_arg(attr, "serve", "decode, encode, collate or uncollate")?;
            match arg.to_string().as_str() {
                "decode" => Ok(Some(Kind::Serve(ServeStep::Decode))),
                "encode" => Ok(Some(Kind::Serve(ServeStep::Encode))),
                "collate" => Ok(Some(Kind::Serve(ServeStep::Collate))),
                "uncollate" => Ok(Some(Kind::Serve(ServeStep::Uncollate))),
                other => Err(syn::Error::new(
                    arg.span(),
                    format!("unknown serving step `{other}`: write #[serve(decode)], #[serve(encode)], #[serve(collate)] or #[serve(uncollate)]"),
                )),
            }
        }
        "step" => {
            let arg = one_arg(attr, "step", "the name of a Task method")?;
            let step = arg.to_string();
            if TRAIT_STEPS.contains(&step.as_str()) {
                Ok(Some(Kind::Step(step)))
            } else {
                Err(syn::Error::new(
                    arg.span(),
                    format!(
                        "`{step}` is not a step of flammable::Task{}; the steps are: {}",
                        suggestion(&step, TRAIT_STEPS),
                        TRAIT_STEPS.join(", ")
                    ),
                ))
            }
        }
        other => Err(syn::Error::new_spanned(
            attr,
            format!(
                "unknown step attribute #[{other}]{}; the step attributes are #[{}] (write \
                 other attributes with their path, e.g. #[tracing::instrument])",
                suggestion(other, STEP_ATTRIBUTES),
                STEP_ATTRIBUTES.join("], #[")
            ),
        )),
    }
}

/// The single identifier inside `#[name(arg)]`.
fn one_arg(attr: &Attribute, name: &str, expected: &str) -> syn::Result<Ident> {
    attr.parse_args::<Ident>().map_err(|_| {
        syn::Error::new_spanned(
            attr,
            format!(
                "#[{name}(..)] takes one of {expected}, e.g. #[{name}({})]",
                expected.split([',', ' ']).next().unwrap_or("")
            ),
        )
    })
}

/// `: did you mean `x`?` for the closest candidate within two edits, or nothing.
fn suggestion(word: &str, candidates: &[&str]) -> String {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, c)| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}
