//! What is emitted beside errors: the user's block, the errors, and a stub `impl Task` and
//! `main`, so that the only messages the user reads are the ones about their mistake.

use crate::args::TaskArgs;
use crate::expand::main_fn;
use crate::parse::TaskDef;
use proc_macro2::TokenStream;
use quote::quote;

pub fn fallback(def: &TaskDef, args: &TaskArgs, error: syn::Error) -> TokenStream {
    let item = &def.item;
    let p = {
        let k = &args.krate;
        quote!(#k::__private)
    };
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let errors = error.to_compile_error();
    let main = if args.main && !item.generics.params.is_empty() {
        // The error says to write `main` by hand; meanwhile a stub keeps rustc from adding
        // "main function not found" to it.
        stub_main()
    } else {
        main_fn(def, args)
    };
    quote! {
        #errors
        #item

        impl #impl_generics #p::Task for #self_ty #where_clause {
            type Hyper = #p::NoHyperparameters;
            fn new(_: &Self::Hyper, _: &#p::Env) -> #p::Result<Self> {
                ::core::unreachable!()
            }
            fn train_data(&self) -> #p::Result<#p::Batches> {
                ::core::unreachable!()
            }
            fn forward(&self, _: &#p::Tensor) -> #p::Result<#p::Tensor> {
                ::core::unreachable!()
            }
            fn loss(&self, _: &#p::Tensor, _: &#p::Batch) -> #p::Result<#p::Tensor> {
                ::core::unreachable!()
            }
        }

        #main
    }
}

/// A `main` that is never run, emitted beside an error so that a binary does not also get
/// "`main` function not found".
pub fn stub_main() -> TokenStream {
    quote! {
        #[allow(dead_code)]
        fn main() {}
    }
}
