//! A checked `TaskDef` → the user's block, one `impl Task` that forwards to the user's
//! functions, and `fn main`. Cannot fail: everything was checked before.

use crate::args::TaskArgs;
use crate::parse::{DataKind, HookPoint, Kind, Phase, ServeStep, Step, TaskDef};
use crate::validate::slot;
use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::{FnArg, Type};

pub fn expand(def: &TaskDef, args: &TaskArgs) -> TokenStream {
    let item = &def.item;
    let k = &args.krate;
    let p = quote!(#k::__private);
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let overridden = |name: &str| {
        def.steps
            .iter()
            .any(|s| slot(&s.kind).as_deref() == Some(name))
    };

    let mut methods = Vec::new();
    let mut hyper = quote!(#p::NoHyperparameters);
    for step in &def.steps {
        let f = &step.sig.ident;
        let call = callee(f);
        // Calls are spanned at the user's function so that type errors land there.
        let span = f.span();
        let typed: Vec<&Type> = step
            .sig
            .inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => Some(t.ty.as_ref()),
                FnArg::Receiver(_) => None,
            })
            .collect();
        methods.push(match &step.kind {
            Kind::Init => {
                if let [h, _env] = typed.as_slice() {
                    let h = match h {
                        Type::Reference(r) => r.elem.as_ref(),
                        other => other,
                    };
                    hyper = quote!(#h);
                    let body = quote_spanned!(span=> #call(hyper, env));
                    quote! {
                        fn new(hyper: &Self::Hyper, env: &#p::Env) -> #p::Result<Self> {
                            #body
                        }
                    }
                } else {
                    let body = quote_spanned!(span=> #call(env));
                    quote! {
                        fn new(_: &Self::Hyper, env: &#p::Env) -> #p::Result<Self> {
                            #body
                        }
                    }
                }
            }
            Kind::Data(kind) => {
                let body = quote_spanned!(span=> #p::into_batches(#call(self)));
                match kind {
                    DataKind::Train => quote! {
                        fn train_data(&self) -> #p::Result<#p::Batches> {
                            #body
                        }
                    },
                    DataKind::Test => quote! {
                        fn test_data(&self) -> #p::Result<#p::Batches> {
                            #body
                        }
                    },
                    DataKind::Validation => quote! {
                        fn validation_data(&self) -> #p::Result<#p::Option<#p::Batches>> {
                            #body.map(#p::Some)
                        }
                    },
                }
            }
            Kind::Forward if typed.len() == 2 => {
                let eval = quote_spanned!(span=> #call(self, input, false));
                let train = quote_spanned!(span=> #call(self, &batch.input, true));
                let forward_train = (!overridden("forward_train")).then(|| {
                    quote! {
                        fn forward_train(&self, batch: &#p::Batch) -> #p::Result<#p::Tensor> {
                            #train
                        }
                    }
                });
                quote! {
                    fn forward(&self, input: &#p::Tensor) -> #p::Result<#p::Tensor> {
                        #eval
                    }
                    #forward_train
                }
            }
            Kind::Forward => {
                let body = quote_spanned!(span=> #call(self, input));
                quote! {
                    fn forward(&self, input: &#p::Tensor) -> #p::Result<#p::Tensor> {
                        #body
                    }
                }
            }
            Kind::Loss => {
                let target = target_arg(&typed);
                let body = quote_spanned!(span=> #call(self, output, #target));
                quote! {
                    fn loss(&self, output: &#p::Tensor, batch: &#p::Batch) -> #p::Result<#p::Tensor> {
                        #body
                    }
                }
            }
            // All metrics become one evaluate_metrics, and the hooks of a point one method,
            // below.
            Kind::Metric | Kind::BuiltInMetric(_) | Kind::On(_) => continue,
            Kind::Optimizer => {
                let body = quote_spanned!(span=> #call(self, vars, env));
                quote! {
                    fn optimizer(
                        &self,
                        vars: #p::Vec<#p::Var>,
                        env: &#p::Env,
                    ) -> #p::Result<#p::Box<dyn #p::Optimizer>> {
                        #body
                    }
                }
            }
            Kind::Prepare(Phase::Eval) => {
                let body = quote_spanned!(span=> #call(self, sample, device));
                quote! {
                    fn prepare_eval(&self, sample: #p::Tensor, device: &#p::Device) -> #p::Result<#p::Tensor> {
                        #body
                    }
                }
            }
            Kind::Prepare(phase) => {
                let name = if *phase == Phase::Train {
                    format_ident!("prepare_train")
                } else {
                    format_ident!("prepare_test")
                };
                let body = quote_spanned!(span=> #call(self, batch, device));
                quote! {
                    fn #name(&self, batch: #p::Batch, device: &#p::Device) -> #p::Result<#p::Batch> {
                        #body
                    }
                }
            }
            Kind::EvalLoad => {
                let body = quote_spanned!(span=> #call(self, path));
                quote! {
                    fn load_sample(&self, path: &#p::Path) -> #p::Result<#p::Tensor> {
                        #body
                    }
                }
            }
            Kind::EvalStore => {
                let body = quote_spanned!(span=> #call(self, result, path));
                quote! {
                    fn store_result(&self, result: &#p::Output, path: &#p::Path) -> #p::Result<()> {
                        #body
                    }
                }
            }
            Kind::Postprocess => {
                // Written at once (RON and JSON): a result may borrow the task, so it cannot
                // be kept for later. `written_output` words the error for a result serde
                // cannot write.
                let body = quote_spanned!(span=> #p::written_output(&#call(self, output)?));
                quote! {
                    fn postprocess(&self, output: &#p::Tensor) -> #p::Result<#p::Output> {
                        #body
                    }
                }
            }
            Kind::Serve(ServeStep::Decode) => {
                let body = if typed.len() == 2 {
                    quote_spanned!(span=> #call(body, content_type))
                } else {
                    quote_spanned!(span=> { let _ = content_type; #call(body) })
                };
                quote! {
                    fn decode_request(body: &[u8], content_type: &str) -> #p::Result<#p::Tensor> {
                        #body
                    }
                }
            }
            Kind::Serve(ServeStep::Encode) => {
                let body = quote_spanned!(span=> #call(self, result));
                quote! {
                    fn encode_response(&self, result: &#p::Output) -> #p::Result<#p::Payload> {
                        #body
                    }
                }
            }
            Kind::Serve(ServeStep::Collate) => {
                let body = quote_spanned!(span=> #call(self, inputs));
                quote! {
                    fn collate(&self, inputs: #p::Vec<#p::Tensor>) -> #p::Result<#p::Tensor> {
                        #body
                    }
                }
            }
            Kind::Serve(ServeStep::Uncollate) => {
                let body = quote_spanned!(span=> #call(self, output, sizes));
                quote! {
                    fn uncollate(&self, output: &#p::Tensor, sizes: &[usize]) -> #p::Result<#p::Vec<#p::Tensor>> {
                        #body
                    }
                }
            }
            Kind::Step(name) => forward_step(step, name, &call),
        });
    }

    for point in [
        HookPoint::Step,
        HookPoint::Epoch,
        HookPoint::Validation,
        HookPoint::Train,
    ] {
        let hooks: Vec<&Step> = def
            .steps
            .iter()
            .filter(|s| s.kind == Kind::On(point))
            .collect();
        if hooks.is_empty() {
            continue;
        }
        let method = format_ident!("{}", point.method());
        let with_results = point == HookPoint::Validation;
        let calls = hooks.iter().map(|h| {
            let call = callee(&h.sig.ident);
            if with_results {
                quote_spanned!(h.sig.ident.span()=> #call(self, trainer, results)?;)
            } else {
                quote_spanned!(h.sig.ident.span()=> #call(self, trainer)?;)
            }
        });
        let params = if with_results {
            quote!(trainer: &mut #p::Trainer, results: &#p::Results)
        } else {
            quote!(trainer: &mut #p::Trainer)
        };
        methods.push(quote! {
            fn #method(&self, #params) -> #p::Result<()> {
                #(#calls)*
                #p::Ok(())
            }
        });
    }

    let metrics: Vec<&Step> = def
        .steps
        .iter()
        .filter(|s| matches!(s.kind, Kind::Metric | Kind::BuiltInMetric(_)))
        .collect();
    if !metrics.is_empty() {
        let values = metrics.iter().map(|m| {
            let f = &m.sig.ident;
            let name = f.to_string();
            let call = callee(f);
            let typed: Vec<&Type> = m
                .sig
                .inputs
                .iter()
                .filter_map(|a| match a {
                    FnArg::Typed(t) => Some(t.ty.as_ref()),
                    FnArg::Receiver(_) => None,
                })
                .collect();
            let target = target_arg(&typed);
            match &m.kind {
                Kind::BuiltInMetric(metric) => quote_spanned!(f.span()=> .with_metric(
                    #name,
                    #p::built_in_metric(#metric, &#call(self, output, #target)?, &batch.target)?,
                )),
                _ => quote_spanned!(f.span()=> .with_metric(#name, #call(self, output, #target)?)),
            }
        });
        let names = metrics.iter().map(|m| m.sig.ident.to_string());
        let directions = metrics.iter().filter_map(|m| match &m.kind {
            Kind::BuiltInMetric(metric) => {
                let name = m.sig.ident.to_string();
                Some(quote!(#name => #p::Some(#p::built_in_larger_is_better(#metric)),))
            }
            _ => None,
        });
        methods.push(quote! {
            fn evaluate_metrics(&self, output: &#p::Tensor, batch: &#p::Batch) -> #p::Result<#p::Metrics> {
                #p::Ok(#p::Metrics::new() #(#values)*)
            }

            fn metric_names() -> #p::Option<#p::Vec<&'static str>> {
                #p::Some(#p::Vec::from([#(#names),*]))
            }

            fn larger_is_better(name: &str) -> #p::Option<bool> {
                match name {
                    #(#directions)*
                    _ => #p::None,
                }
            }
        });
    } else if !overridden("evaluate_metrics") {
        // The default evaluate_metrics: the loss alone.
        methods.push(quote! {
            fn metric_names() -> #p::Option<#p::Vec<&'static str>> {
                #p::Some(#p::Vec::from(["loss"]))
            }
        });
    }
    // Known before the task is built, so that `--best-metric` is checked before a run starts.
    let validates = overridden("validation_data");
    methods.push(quote! {
        fn has_validation_data() -> #p::Option<bool> {
            #p::Some(#validates)
        }
    });
    if !overridden("loss") {
        // Only #[step(losses)] was given: the single loss is their sum.
        methods.push(quote! {
            fn loss(&self, output: &#p::Tensor, batch: &#p::Batch) -> #p::Result<#p::Tensor> {
                #p::Task::losses(self, output, batch)?.total()
            }
        });
    }

    let experiment = match &args.experiment {
        Some(name) => quote!(#name),
        None => quote!(::core::env!("CARGO_CRATE_NAME")),
    };
    if !args.defaults.is_empty() {
        let fields = args
            .defaults
            .iter()
            .map(|(key, value)| quote!(#key: #value));
        methods.insert(
            0,
            quote! {
                fn default_config() -> #p::TrainConfig {
                    #p::TrainConfig {
                        #(#fields,)*
                        ..#p::TrainConfig::default()
                    }
                }
            },
        );
    }
    if args.non_finite_inputs {
        methods.push(quote! {
            const NON_FINITE_INPUTS: bool = true;
        });
    }
    let main = main_fn(def, args);
    quote! {
        #item

        impl #impl_generics #p::Task for #self_ty #where_clause {
            type Hyper = #hyper;

            fn experiment() -> &'static str {
                #experiment
            }

            fn build_target() -> #p::BuildTarget {
                #p::BuildTarget {
                    package: ::core::env!("CARGO_PKG_NAME"),
                    name: ::core::env!("CARGO_CRATE_NAME"),
                    manifest_dir: ::core::env!("CARGO_MANIFEST_DIR"),
                }
            }

            #(#methods)*
        }

        #main
    }
}

/// `fn main` running the CLI, unless `no_main` or the task is generic.
pub fn main_fn(def: &TaskDef, args: &TaskArgs) -> TokenStream {
    if !args.main || !def.item.generics.params.is_empty() {
        return TokenStream::new();
    }
    let k = &args.krate;
    let self_ty = &def.item.self_ty;
    quote! {
        fn main() -> ::std::process::ExitCode {
            use #k::__private::{LocalLoaderOf as _, SharedLoaderOf as _};
            #k::__private::main_serving::<#self_ty>(
                (&&#k::__private::LoaderProbe::<#self_ty>::NEW).serve_loader(),
            )
        }
    }
}

/// `Self::f`, spanned at the user's function so that rustc blames it for type errors.
/// (In `Self::f`, the inherent function wins over a trait method of the same name.)
fn callee(f: &syn::Ident) -> TokenStream {
    quote_spanned!(f.span()=> Self::#f)
}

/// `batch` when the step's last parameter is a `&Batch`, else `&batch.target`.
fn target_arg(typed: &[&Type]) -> TokenStream {
    let wants_batch = typed.last().is_some_and(|t| {
        let t = match t {
            Type::Reference(r) => r.elem.as_ref(),
            other => other,
        };
        matches!(t, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Batch"))
    });
    if wants_batch {
        quote!(batch)
    } else {
        quote!(&batch.target)
    }
}

/// `#[step(name)]`: the trait method `name` with the user's own parameter types, forwarding.
fn forward_step(step: &Step, name: &str, call: &TokenStream) -> TokenStream {
    let name = format_ident!("{}", name);
    let mut params = Vec::new();
    let mut args = Vec::new();
    for (i, input) in step.sig.inputs.iter().enumerate() {
        if let FnArg::Typed(t) = input {
            let arg = format_ident!("arg{}", i);
            let ty = &t.ty;
            params.push(quote!(#arg: #ty));
            args.push(arg);
        }
    }
    let output = &step.sig.output;
    let body = quote_spanned!(step.sig.ident.span()=> #call(self, #(#args),*));
    quote! {
        fn #name(&self, #(#params),*) #output {
            #body
        }
    }
}
