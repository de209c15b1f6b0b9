//! Checks that need the whole block: signatures, duplicated steps, missing required steps.
//! Every problem is reported, each at the user's tokens, with the signature to write.

use crate::errors::Errors;
use crate::parse::{DataKind, Kind, Phase, Step, TaskDef};
use syn::spanned::Spanned;
use syn::{FnArg, ReturnType, Type};

/// The trait method a step fills, for duplicate detection (`None`: several allowed).
pub fn slot(kind: &Kind) -> Option<String> {
    Some(
        match kind {
            Kind::Init => "new",
            Kind::Data(DataKind::Train) => "train_data",
            Kind::Data(DataKind::Test) => "test_data",
            Kind::Data(DataKind::Validation) => "validation_data",
            Kind::Forward => "forward",
            Kind::Loss => "loss",
            Kind::Metric => return None,
            Kind::Optimizer => "optimizer",
            Kind::Prepare(Phase::Train) => "prepare_train",
            Kind::Prepare(Phase::Test) => "prepare_test",
            Kind::Prepare(Phase::Eval) => "prepare_eval",
            Kind::EvalLoad => "load_sample",
            Kind::EvalStore => "store_result",
            Kind::Postprocess => "postprocess",
            Kind::Step(name) => name,
        }
        .to_string(),
    )
}

/// How the user writes a step: the attribute and the signature to give.
pub fn expected(kind: &Kind) -> String {
    match kind {
        Kind::Init => "#[init] fn new(hyper: &MyHyperparameters, env: &Env) -> Result<Self> (or fn new(env: &Env) -> Result<Self> for a task without hyperparameters)".into(),
        Kind::Data(d) => {
            let name = match d {
                DataKind::Train => "train",
                DataKind::Test => "test",
                DataKind::Validation => "validation",
            };
            format!("#[data({name})] fn {name}_data(&self) -> Result<Batches> (or a Result of anything that converts into Batches, like a Batcher)")
        }
        Kind::Forward => "#[forward] fn forward(&self, input: &Tensor) -> Result<Tensor> (a third parameter `train: bool` tells training from testing)".into(),
        Kind::Loss => "#[loss] fn loss(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> (or `batch: &Batch` as the second parameter)".into(),
        Kind::Metric => "#[metric] fn accuracy(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> (or `batch: &Batch` as the second parameter)".into(),
        Kind::Optimizer => "#[optimizer] fn optimizer(&self, vars: Vec<Var>, env: &Env) -> Result<Box<dyn Optimizer>>".into(),
        Kind::Prepare(Phase::Eval) => "#[prepare(eval)] fn prepare(&self, sample: Tensor, device: &Device) -> Result<Tensor>".into(),
        Kind::Prepare(p) => format!(
            "#[prepare({})] fn prepare(&self, batch: Batch, device: &Device) -> Result<Batch>",
            if *p == Phase::Train { "train" } else { "test" }
        ),
        Kind::EvalLoad => "#[eval(load)] fn load(&self, path: &Path) -> Result<Tensor>".into(),
        Kind::EvalStore => "#[eval(store)] fn store(&self, result: &Output, path: &Path) -> Result<()>".into(),
        Kind::Postprocess => "#[postprocess] fn postprocess(&self, output: &Tensor) -> Result<T>, where T: Serialize".into(),
        Kind::Step(name) => format!("#[step({name})] fn {name}(&self, ..) with the signature of flammable::Task::{name}"),
    }
}

/// The numbers of parameters (besides `&self`) a step may take.
fn arity(kind: &Kind) -> Option<&'static [usize]> {
    Some(match kind {
        Kind::Init => &[1, 2],
        Kind::Data(_) => &[0],
        Kind::Forward => &[1, 2],
        Kind::Loss | Kind::Metric | Kind::Optimizer | Kind::Prepare(_) | Kind::EvalStore => &[2],
        Kind::EvalLoad | Kind::Postprocess => &[1],
        Kind::Step(_) => return None,
    })
}

pub fn validate(def: &TaskDef, errors: &mut Errors) {
    // A misspelled step attribute would also read as a missing step: report only the typo.
    let misspelled = !errors.is_empty();
    for step in &def.steps {
        check_signature(step, errors);
    }
    check_duplicates(&def.steps, errors);
    if !misspelled {
        check_missing(def, errors);
    }
}

fn check_signature(step: &Step, errors: &mut Errors) {
    let sig = &step.sig;
    let want = expected(&step.kind);
    let receiver = sig.inputs.iter().find_map(|a| match a {
        FnArg::Receiver(r) => Some(r),
        FnArg::Typed(_) => None,
    });
    match (&step.kind, receiver) {
        (Kind::Init, Some(r)) => errors.push(syn::Error::new_spanned(
            r,
            format!("#[init] builds the task, so it takes no self: {want}"),
        )),
        (Kind::Init, None) => {}
        (_, None) => errors.push(syn::Error::new_spanned(
            &sig.ident,
            format!("this step needs a `&self` parameter: {want}"),
        )),
        (_, Some(r)) if r.reference.is_none() || r.mutability.is_some() => errors.push(syn::Error::new_spanned(
            r,
            format!("steps take `&self` (variables change through the optimizer, not through &mut self): {want}"),
        )),
        _ => {}
    }
    let params = sig
        .inputs
        .iter()
        .filter(|a| matches!(a, FnArg::Typed(_)))
        .count();
    if let Some(allowed) = arity(&step.kind) {
        if !allowed.contains(&params) {
            errors.push(syn::Error::new_spanned(
                &sig.inputs,
                format!("wrong parameters for this step: {want}"),
            ));
        }
    }
    if !returns_result(&sig.output) {
        let span = match &sig.output {
            ReturnType::Default => sig.ident.span(),
            ReturnType::Type(_, t) => t.span(),
        };
        errors.push(syn::Error::new(
            span,
            format!("a step returns a Result: {want}"),
        ));
    }
    if sig.asyncness.is_some() || !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.ident,
            format!("a step is a plain function (no async, no generics): {want}"),
        ));
    }
}

/// True for `Result<..>` or any path ending in `Result`.
fn returns_result(output: &ReturnType) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::Path(p) = ty.as_ref() else {
        return false;
    };
    p.path.segments.last().is_some_and(|s| s.ident == "Result")
}

fn check_duplicates(steps: &[Step], errors: &mut Errors) {
    for (i, step) in steps.iter().enumerate() {
        let Some(name) = slot(&step.kind) else {
            continue;
        };
        if let Some(first) = steps[..i]
            .iter()
            .find(|s| slot(&s.kind).as_deref() == Some(name.as_str()))
        {
            errors.push(syn::Error::new_spanned(
                &step.attr,
                format!(
                    "`fn {}` is a second `{name}` step (`fn {}` is the first); keep one of the two",
                    step.sig.ident, first.sig.ident
                ),
            ));
        }
    }
    let metric = steps.iter().find(|s| s.kind == Kind::Metric);
    let evaluate = steps
        .iter()
        .find(|s| s.kind == Kind::Step("evaluate_metrics".into()));
    if let (Some(_), Some(e)) = (metric, evaluate) {
        errors.push(syn::Error::new_spanned(
            &e.attr,
            "#[step(evaluate_metrics)] replaces the #[metric] steps: keep either the #[metric] steps or this one",
        ));
    }
}

fn check_missing(def: &TaskDef, errors: &mut Errors) {
    let has = |slot: &str| {
        def.steps
            .iter()
            .any(|s| self::slot(&s.kind).as_deref() == Some(slot))
    };
    let mut required = vec![
        ("new", Kind::Init),
        ("train_data", Kind::Data(DataKind::Train)),
        ("forward", Kind::Forward),
    ];
    // Several named losses (#[step(losses)]) stand in for a single #[loss].
    if !has("losses") {
        required.push(("loss", Kind::Loss));
    }
    for (slot, kind) in required {
        if !has(slot) {
            errors.push(syn::Error::new_spanned(
                &def.item.self_ty,
                format!("this task has no `{slot}` step: add {}", expected(&kind)),
            ));
        }
    }
}
