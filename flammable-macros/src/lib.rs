//! `#[flammable::task]`: an `impl` block of step functions → an implementation of
//! `flammable::Task` and a `main` running its command line.
//!
//! Use it through the `flammable` crate, whose documentation shows every attribute beside
//! the code it expands to.

mod args;
mod errors;
mod expand;
mod fallback;
mod parse;
mod validate;

use proc_macro::TokenStream;

/// Turns an inherent `impl` block of step functions into `impl flammable::Task` and a `main`.
///
/// ```ignore
/// #[flammable::task]
/// impl Digits {
///     #[init]        fn new(hp: &Hyper, env: &Env) -> Result<Self> { todo!() }
///     #[data(train)] fn train_data(&self) -> Result<Batches> { todo!() }
///     #[forward]     fn forward(&self, x: &Tensor) -> Result<Tensor> { todo!() }
///     #[loss]        fn loss(&self, out: &Tensor, y: &Tensor) -> Result<Tensor> { todo!() }
/// }
/// ```
///
/// Arguments: `no_main` (no `fn main`, for a task in a library), `experiment = "name"` (the
/// default is the binary or example name), `crate = path` (where `flammable` is, when renamed),
/// `non_finite_inputs` (the task takes NaN and infinite inputs: `serve` and `eval` then let
/// them through: `Task::NON_FINITE_INPUTS`) and defaults of the shared training settings
/// (`epochs = 20, lr = 3e-3`).
///
/// # Step attributes
///
/// Each attribute fills the `Task` method of the same name; the generated method only
/// forwards to your function (`cargo expand` shows it):
///
/// | attribute | your function | fills |
/// | --- | --- | --- |
/// | `#[init]` | `fn new(hp: &H, env: &Env) -> Result<Self>` (or `fn new(env: &Env)`) | `Task::new`, `type Hyper = H` |
/// | `#[data(train)]` | `fn f(&self) -> Result<B>`, `B` one of `Batches`, `Batcher`, `Vec<Batch>` | `Task::train_data` |
/// | `#[data(test)]` | same | `Task::test_data` |
/// | `#[data(validation)]` | same | `Task::validation_data` |
/// | `#[forward]` | `fn f(&self, x: &Tensor) -> Result<Tensor>`, optionally `train: bool` third | `Task::forward` (and `Task::forward_train`) |
/// | `#[loss]` | `fn f(&self, out: &Tensor, y: &Tensor) -> Result<Tensor>` (or `batch: &Batch`) | `Task::loss` |
/// | `#[metric]` (several) | same as `#[loss]`; named after the function | `Task::evaluate_metrics` |
/// | `#[optimizer]` | `fn f(&self, vars: Vec<Var>, env: &Env) -> Result<Box<dyn Optimizer>>` | `Task::optimizer` |
/// | `#[prepare(train)]`, `#[prepare(test)]` | `fn f(&self, batch: Batch, device: &Device) -> Result<Batch>` | `Task::prepare_train`, `Task::prepare_test` |
/// | `#[prepare(eval)]` | `fn f(&self, sample: Tensor, device: &Device) -> Result<Tensor>` | `Task::prepare_eval` |
/// | `#[eval(load)]` | `fn f(&self, path: &Path) -> Result<Tensor>` | `Task::load_sample` |
/// | `#[eval(store)]` | `fn f(&self, result: &Output, path: &Path) -> Result<()>` | `Task::store_result` |
/// | `#[postprocess]` | `fn f(&self, out: &Tensor) -> Result<T>`, `T: Serialize` | `Task::postprocess` |
/// | `#[serve(decode)]` | `fn f(body: &[u8], content_type: &str) -> Result<Tensor>` (no `self`; `content_type` optional) | `Task::decode_request` |
/// | `#[serve(encode)]` | `fn f(&self, result: &Output) -> Result<Payload>` | `Task::encode_response` |
/// | `#[serve(collate)]` | `fn f(&self, inputs: Vec<Tensor>) -> Result<Tensor>` | `Task::collate` |
/// | `#[serve(uncollate)]` | `fn f(&self, output: &Tensor, sizes: &[usize]) -> Result<Vec<Tensor>>` | `Task::uncollate` |
/// | `#[on(step_end)]`, `#[on(epoch_end)]`, `#[on(train_end)]` (several each) | `fn f(&self, trainer: &mut Trainer) -> Result<()>` | `Task::on_step_end`, … (each runs them in order) |
/// | `#[on(validation_end)]` (several) | `fn f(&self, trainer: &mut Trainer, results: &Results) -> Result<()>` | `Task::on_validation_end` |
/// | `#[step(name)]` | the exact signature of `Task::name` | any `Task` method |
///
/// For example `#[loss] fn nll(&self, out: &Tensor, y: &Tensor)` expands to
///
/// ```ignore
/// impl ::flammable::__private::Task for Digits {
///     fn loss(&self, output: &Tensor, batch: &Batch) -> ::flammable::__private::Result<Tensor> {
///         Digits::nll(self, output, &batch.target)
///     }
/// }
/// ```
#[proc_macro_attribute]
pub fn task(args: TokenStream, input: TokenStream) -> TokenStream {
    let mut errors = errors::Errors::new();
    // A bad argument is reported, and the block still expands (with the default arguments),
    // so that the user reads that one error and not a missing `main` beside it.
    let args = match syn::parse::<args::TaskArgs>(args) {
        Ok(a) => a,
        Err(e) => {
            errors.push(e);
            args::TaskArgs::default()
        }
    };
    let item = match syn::parse::<syn::ItemImpl>(input.clone()) {
        Ok(item) if item.trait_.is_none() => item,
        Ok(item) => {
            let path = item.trait_.as_ref().map(|(_, path, _)| path.clone());
            return misplaced(path, input, "on a trait implementation", &args);
        }
        Err(_) => {
            let (tokens, what) = match syn::parse::<syn::Item>(input.clone()) {
                Ok(syn::Item::Struct(s)) => {
                    let (kw, name) = (s.struct_token, s.ident);
                    (quote::quote!(#kw #name), "on a struct")
                }
                Ok(syn::Item::Enum(e)) => {
                    let (kw, name) = (e.enum_token, e.ident);
                    (quote::quote!(#kw #name), "on an enum")
                }
                Ok(syn::Item::Fn(f)) => {
                    let (kw, name) = (f.sig.fn_token, f.sig.ident);
                    (quote::quote!(#kw #name), "on a function")
                }
                _ => (proc_macro2::TokenStream::from(input.clone()), "here"),
            };
            return misplaced(tokens, input, what, &args);
        }
    };
    if args.main && !item.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &item.generics,
            "a generic task has no `main` of its own: write #[flammable::task(no_main)] and, for the \
             type the binary trains, `fn main() -> std::process::ExitCode { flammable::main::<MyTask<f32>>() }`",
        ));
    }
    let def = parse::parse(item, &mut errors);
    validate::validate(&def, &mut errors);
    match errors.into_result() {
        Ok(()) => expand::expand(&def, &args),
        Err(e) => fallback::fallback(&def, &args, e),
    }
    .into()
}

/// The error for `#[flammable::task]` on something other than an inherent impl block (with
/// a stub `main`, so that a binary gets this one error and not a missing `main` beside it).
fn misplaced(
    at: impl quote::ToTokens,
    input: TokenStream,
    where_: &str,
    args: &args::TaskArgs,
) -> TokenStream {
    let e = syn::Error::new_spanned(
        at,
        format!(
            "#[flammable::task] goes on an inherent impl block, not {where_}: write \
             `#[flammable::task] impl MyTask {{ #[forward] fn forward(..) .. }}`"
        ),
    );
    let mut out = proc_macro2::TokenStream::from(input);
    out.extend(e.to_compile_error());
    if args.main {
        out.extend(fallback::stub_main());
    }
    out.into()
}
