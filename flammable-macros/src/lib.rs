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
/// default is the binary or example name), `crate = path` (where `flammable` is, when renamed).
/// The step attributes are documented on the `flammable` crate.
#[proc_macro_attribute]
pub fn task(args: TokenStream, input: TokenStream) -> TokenStream {
    let args = match syn::parse::<args::TaskArgs>(args) {
        Ok(a) => a,
        Err(e) => {
            let mut out = proc_macro2::TokenStream::from(input);
            out.extend(e.to_compile_error());
            return out.into();
        }
    };
    let item = match syn::parse::<syn::ItemImpl>(input.clone()) {
        Ok(item) if item.trait_.is_none() => item,
        Ok(item) => {
            let path = item.trait_.as_ref().map(|(_, path, _)| path.clone());
            return misplaced(path, input, "on a trait implementation");
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
            return misplaced(tokens, input, what);
        }
    };
    let mut errors = errors::Errors::new();
    let def = parse::parse(item, &mut errors);
    validate::validate(&def, &mut errors);
    match errors.into_result() {
        Ok(()) => expand::expand(&def, &args),
        Err(e) => fallback::fallback(&def, &args, e),
    }
    .into()
}

/// The error for `#[flammable::task]` on something other than an inherent impl block.
fn misplaced(at: impl quote::ToTokens, input: TokenStream, where_: &str) -> TokenStream {
    let e = syn::Error::new_spanned(
        at,
        format!(
            "#[flammable::task] goes on an inherent impl block, not {where_}: write \
             `#[flammable::task] impl MyTask {{ #[forward] fn forward(..) .. }}`"
        ),
    );
    let mut out = proc_macro2::TokenStream::from(input);
    out.extend(e.to_compile_error());
    out.into()
}
