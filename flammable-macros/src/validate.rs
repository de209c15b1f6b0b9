//! Checks that need the whole block: signatures, duplicated steps, missing required steps.
//! Every problem is reported, each at the user's tokens, with the signature to write.

use crate::errors::Errors;
use crate::parse::{DataKind, HookPoint, Kind, Phase, ServeStep, Step, TaskDef};
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
            Kind::Metric | Kind::BuiltInMetric(_) | Kind::On(_) => return None,
            Kind::Optimizer => "optimizer",
            Kind::Prepare(Phase::Train) => "prepare_train",
            Kind::Prepare(Phase::Test) => "prepare_test",
            Kind::Prepare(Phase::Eval) => "prepare_eval",
            Kind::EvalLoad => "load_sample",
            Kind::EvalStore => "store_result",
            Kind::Postprocess => "postprocess",
            Kind::Serve(ServeStep::Decode) => "decode_request",
            Kind::Serve(ServeStep::Encode) => "encode_response",
            Kind::Serve(ServeStep::Collate) => "collate",
            Kind::Serve(ServeStep::Uncollate) => "uncollate",
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
        Kind::Metric => "#[metric] fn accuracy(&self, output: &Tensor, target: &Tensor) -> Result<Tensor> (or a pooled metric, `Result<Pooled>`; or `batch: &Batch` as the second parameter)".into(),
        Kind::BuiltInMetric(m) => format!("#[metric({m})] fn {m}(&self, output: &Tensor, target: &Tensor) -> Result<Tensor>, returning the scores the metric judges (usually `Ok(output.clone())`; or `batch: &Batch` as the second parameter)"),
        Kind::Optimizer => "#[optimizer] fn optimizer(&self, vars: Vec<Var>, env: &Env) -> Result<Box<dyn Optimizer>>".into(),
        Kind::Prepare(Phase::Eval) => "#[prepare(eval)] fn prepare(&self, sample: Tensor, device: &Device) -> Result<Tensor>".into(),
        Kind::Prepare(p) => format!(
            "#[prepare({})] fn prepare(&self, batch: Batch, device: &Device) -> Result<Batch>",
            if *p == Phase::Train { "train" } else { "test" }
        ),
        Kind::EvalLoad => "#[eval(load)] fn load(&self, path: &Path) -> Result<Tensor>".into(),
        Kind::EvalStore => "#[eval(store)] fn store(&self, result: &Output, path: &Path) -> Result<()>".into(),
        Kind::Postprocess => "#[postprocess] fn postprocess(&self, output: &Tensor) -> Result<T>, where T: Serialize".into(),
        Kind::Serve(ServeStep::Decode) => "#[serve(decode)] fn decode(body: &[u8], content_type: &str) -> Result<Tensor> (no self: it runs where the request arrives; `content_type` may be left out)".into(),
        Kind::Serve(ServeStep::Encode) => "#[serve(encode)] fn encode(&self, result: &Output) -> Result<Payload>".into(),
        Kind::Serve(ServeStep::Collate) => "#[serve(collate)] fn collate(&self, inputs: Vec<Tensor>) -> Result<Tensor>".into(),
        Kind::Serve(ServeStep::Uncollate) => "#[serve(uncollate)] fn uncollate(&self, output: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>>".into(),
        Kind::On(HookPoint::Validation) => "#[on(validation_end)] fn f(&self, trainer: &mut Trainer, results: &Results) -> Result<()>".into(),
        Kind::On(point) => format!("#[on({})] fn f(&self, trainer: &mut Trainer) -> Result<()>", point.name()),
        Kind::Step(name) => format!("#[step({name})] fn {name}(&self, ..) with the signature of flammable::Task::{name}"),
    }
}

/// The numbers of parameters (besides `&self`) a step may take.
fn arity(kind: &Kind) -> Option<&'static [usize]> {
    Some(match kind {
        Kind::Init => &[1, 2],
        Kind::Data(_) => &[0],
        Kind::Forward => &[1, 2],
        Kind::Loss
        | Kind::Metric
        | Kind::BuiltInMetric(_)
        | Kind::Optimizer
        | Kind::Prepare(_)
        | Kind::EvalStore => &[2],
        Kind::EvalLoad | Kind::Postprocess => &[1],
        Kind::Serve(ServeStep::Decode) => &[1, 2],
        Kind::Serve(ServeStep::Encode | ServeStep::Collate) => &[1],
        Kind::Serve(ServeStep::Uncollate) => &[2],
        Kind::On(HookPoint::Validation) => &[2],
        Kind::On(_) => &[1],
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
        (Kind::Serve(ServeStep::Decode), Some(r)) => errors.push(syn::Error::new_spanned(
            r,
            format!("#[serve(decode)] reads a request before it waits for the model, so it takes no self: {want}"),
        )),
        (Kind::Serve(ServeStep::Decode), None) => {}
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
    check_parameter_types(step, &want, errors);
    let pooled = step.kind == Kind::Metric && result_of(&sig.output, "Pooled");
    if returns_result(&sig.output)
        && matches!(
            step.kind,
            Kind::Forward | Kind::Loss | Kind::Metric | Kind::BuiltInMetric(_)
        )
        && !result_of(&sig.output, "Tensor")
        && !pooled
    {
        let what = match step.kind {
            Kind::Forward => "the model's output",
            Kind::Loss => "the loss, a scalar tensor that stays on the device",
            Kind::BuiltInMetric(_) => "the scores the built-in metric judges",
            _ => "the metric, a scalar tensor that stays on the device (the loop reads metrics back once, at the end)",
        };
        errors.push(syn::Error::new_spanned(
            &sig.output,
            format!("this step returns {what}: `Result<Tensor>`, not a number; the step is {want}"),
        ));
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

/// The parameters whose types a step's signature fixes, checked where a mistake would
/// otherwise surface as a rustc error inside the generated code: `(index among the
/// non-self parameters, accepted type names, what to write)`.
fn fixed_parameters(kind: &Kind) -> &'static [(usize, &'static [&'static str], &'static str)] {
    match kind {
        Kind::Forward => &[(0, &["&Tensor"], "input: &Tensor")],
        Kind::Loss | Kind::Metric | Kind::BuiltInMetric(_) => &[
            (0, &["&Tensor"], "output: &Tensor"),
            (
                1,
                &["&Tensor", "&Batch"],
                "target: &Tensor (or batch: &Batch)",
            ),
        ],
        Kind::EvalLoad => &[(0, &["&Path"], "path: &Path")],
        Kind::Postprocess => &[(0, &["&Tensor"], "output: &Tensor")],
        Kind::Serve(ServeStep::Decode) => &[
            (0, &["&[u8]"], "body: &[u8]"),
            (1, &["&str"], "content_type: &str"),
        ],
        Kind::Serve(ServeStep::Encode) => &[(0, &["&Output"], "result: &Output")],
        Kind::On(HookPoint::Validation) => &[
            (0, &["&mut Trainer"], "trainer: &mut Trainer"),
            (1, &["&Results"], "results: &Results"),
        ],
        Kind::On(_) => &[(0, &["&mut Trainer"], "trainer: &mut Trainer")],
        Kind::Serve(ServeStep::Collate) => &[(0, &["Vec"], "inputs: Vec<Tensor>")],
        Kind::Serve(ServeStep::Uncollate) => &[
            (0, &["&Tensor"], "output: &Tensor"),
            (1, &["&[usize]"], "sizes: &[usize]"),
        ],
        _ => &[],
    }
}

fn check_parameter_types(step: &Step, want: &str, errors: &mut Errors) {
    let typed: Vec<&syn::PatType> = step
        .sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(t),
            FnArg::Receiver(_) => None,
        })
        .collect();
    // #[init]'s parameters are lent, the hyperparameters (whatever their type) and the env:
    // one taken by value got rustc's "expected `H`, found `&H`" and a nonsense hint.
    if step.kind == Kind::Init {
        for param in &typed {
            if !matches!(param.ty.as_ref(), Type::Reference(_)) {
                let ty = written_type(&param.ty);
                let name = quote::ToTokens::to_token_stream(&param.pat).to_string();
                errors.push(syn::Error::new_spanned(
                    &param.ty,
                    format!("this parameter is `{ty}`: write `{name}: &{ty}` (#[init] borrows it); the step is {want}"),
                ));
            }
        }
    }
    for (index, accepted, write) in fixed_parameters(&step.kind) {
        let Some(param) = typed.get(*index) else {
            continue;
        };
        let written = type_name(&param.ty);
        if !accepted.contains(&written.as_str()) {
            errors.push(syn::Error::new_spanned(
                &param.ty,
                format!(
                    "this parameter is `{}`: write `{write}`; the step is {want}",
                    written_type(&param.ty)
                ),
            ));
        }
    }
}

/// A type as written, without the spaces token streams put after `&`.
fn written_type(ty: &Type) -> String {
    quote::ToTokens::to_token_stream(ty)
        .to_string()
        .replace("& ", "&")
}

/// A type as `&Name` or `Name`, by the last segment of its path (`&candle_core::Tensor` is
/// `&Tensor`); anything else as written.
fn type_name(ty: &Type) -> String {
    match ty {
        Type::Reference(r) if r.mutability.is_none() => format!("&{}", type_name(&r.elem)),
        Type::Reference(r) => format!("&mut {}", type_name(&r.elem)),
        Type::Path(p) => p
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default(),
        other => quote::ToTokens::to_token_stream(other).to_string(),
    }
}

/// True for `Result<T>` (any path ending in `Result`) whose first type argument is named
/// `inner`.
fn result_of(output: &ReturnType, inner: &str) -> bool {
    let ReturnType::Type(_, ty) = output else {
        return false;
    };
    let Type::Path(p) = ty.as_ref() else {
        return false;
    };
    let Some(last) = p.path.segments.last() else {
        return false;
    };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return false;
    };
    args.args.iter().find_map(|a| match a {
        syn::GenericArgument::Type(t) => Some(type_name(t) == inner),
        _ => None,
    }) == Some(true)
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
    let metric = steps
        .iter()
        .find(|s| matches!(s.kind, Kind::Metric | Kind::BuiltInMetric(_)));
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
        if has(slot) {
            continue;
        }
        // A function of the step's name without its attribute: the attribute was forgotten.
        let unannotated = def.item.items.iter().find_map(|item| match item {
            syn::ImplItem::Fn(f) if f.sig.ident == slot => Some(&f.sig.ident),
            _ => None,
        });
        let attribute = expected(&kind);
        let attribute = attribute.split(' ').next().unwrap_or("");
        match unannotated {
            Some(ident) => errors.push(syn::Error::new_spanned(
                ident,
                format!(
                    "`fn {slot}` is not a step yet: add `{attribute}` above it; the step is {}",
                    expected(&kind)
                ),
            )),
            None => errors.push(syn::Error::new_spanned(
                &def.item.self_ty,
                format!("this task has no `{slot}` step: add {}", expected(&kind)),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::errors::Errors;
    use crate::parse::{parse, Kind};

    /// The messages parse and validate give for `block`, in order.
    fn messages(block: syn::ItemImpl) -> Vec<String> {
        let mut errors = Errors::new();
        let def = parse(block, &mut errors);
        super::validate(&def, &mut errors);
        match errors.into_result() {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn a_complete_task_parses_into_its_steps() {
        let mut errors = Errors::new();
        let def = parse(
            syn::parse_quote! {
                impl T {
                    #[init] fn new(env: &Env) -> Result<Self> { todo!() }
                    #[data(train)] fn d(&self) -> Result<Batches> { todo!() }
                    #[forward] fn f(&self, x: &Tensor) -> Result<Tensor> { todo!() }
                    #[loss] fn l(&self, o: &Tensor, y: &Tensor) -> Result<Tensor> { todo!() }
                    #[metric] fn m(&self, o: &Tensor, b: &Batch) -> Result<Tensor> { todo!() }
                    /// Kept as written.
                    #[inline] fn helper(&self) {}
                }
            },
            &mut errors,
        );
        super::validate(&def, &mut errors);
        assert!(errors.is_empty());
        let kinds: Vec<&Kind> = def.steps.iter().map(|s| &s.kind).collect();
        assert_eq!(kinds.len(), 5);
        assert_eq!(kinds[4], &Kind::Metric);
        // Step attributes are removed; the others stay.
        let syn::ImplItem::Fn(helper) = &def.item.items[5] else {
            panic!("not a fn")
        };
        assert_eq!(helper.attrs.len(), 2);
    }

    #[test]
    fn every_mistake_is_reported_with_what_to_write() {
        let found = messages(syn::parse_quote! {
            impl T {
                fn new(env: &Env) -> Result<Self> { todo!() }
                #[data(train)] fn d(&self) -> Result<Batches> { todo!() }
                #[forward] fn f(&self, x: Tensor) -> Result<Tensor> { todo!() }
                #[metric] fn m(&self, o: &Tensor, y: &Tensor) -> Result<f32> { todo!() }
                #[flammable::loss] fn l(&self, o: &Tensor, y: &Tensor) -> Result<Tensor> { todo!() }
            }
        });
        let has = |part: &str| found.iter().any(|m| m.contains(part));
        assert!(has("write #[loss]"), "{found:?}");
        assert!(has("write `input: &Tensor`"), "{found:?}");
        assert!(has("`Result<Tensor>`, not a number"), "{found:?}");
        // A misused attribute reads as a missing step too: only the attribute is reported.
        assert!(!has("add `#[init]`"), "{found:?}");
        let found = messages(syn::parse_quote! {
            impl T {
                fn new(env: &Env) -> Result<Self> { todo!() }
                #[data(train)] fn d(&self) -> Result<Batches> { todo!() }
                #[forward] async fn f(&self, x: &Tensor) -> Result<Tensor> { todo!() }
                #[loss] fn l(&self, o: &Tensor, y: &Tensor) -> Result<Tensor> { todo!() }
            }
        });
        assert!(
            found.iter().any(|m| m.contains("add `#[init]` above it")),
            "{found:?}"
        );
        assert!(found.iter().any(|m| m.contains("no async")), "{found:?}");
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn duplicates_and_unknown_attributes_name_the_fix() {
        let found = messages(syn::parse_quote! {
            impl T {
                #[init] fn new(env: &Env) -> Result<Self> { todo!() }
                #[data(train)] fn d(&self) -> Result<Batches> { todo!() }
                #[forward] fn f(&self, x: &Tensor) -> Result<Tensor> { todo!() }
                #[forward] fn g(&self, x: &Tensor) -> Result<Tensor> { todo!() }
                #[lose] fn l(&self, o: &Tensor, y: &Tensor) -> Result<Tensor> { todo!() }
            }
        });
        assert!(
            found.iter().any(|m| m.contains("did you mean `loss`")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|m| m.contains("second `forward` step")),
            "{found:?}"
        );
    }
}
