//! The arguments of `#[flammable::task(...)]`: `no_main`, `experiment = "name"`,
//! `crate = path`, `non_finite_inputs`, and defaults of the training settings
//! (`epochs = 20, lr = 3e-3`).

use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Path, Token};

pub struct TaskArgs {
    pub main: bool,
    /// `key = value` pairs: defaults of the shared training settings (`epochs = 20`).
    pub defaults: Vec<(Ident, syn::Expr)>,
    pub experiment: Option<LitStr>,
    pub krate: Path,
    /// `non_finite_inputs`: the task takes NaN and infinite inputs (`Task::NON_FINITE_INPUTS`).
    pub non_finite_inputs: bool,
}

impl Default for TaskArgs {
    fn default() -> Self {
        TaskArgs {
            main: true,
            defaults: Vec::new(),
            experiment: None,
            krate: syn::parse_quote!(::flammable),
            non_finite_inputs: false,
        }
    }
}

impl Parse for TaskArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut args = TaskArgs::default();
        while !input.is_empty() {
            if input.peek(Token![crate]) {
                input.parse::<Token![crate]>()?;
                input.parse::<Token![=]>()?;
                args.krate = input.parse()?;
            } else {
                let key: Ident = input.parse()?;
                match key.to_string().as_str() {
                    "no_main" => args.main = false,
                    "non_finite_inputs" => args.non_finite_inputs = true,
                    "experiment" => {
                        input.parse::<Token![=]>()?;
                        args.experiment = Some(input.parse()?);
                    }
                    // Any other `key = value` is a default of a training setting; rustc
                    // names a key that is not a field of TrainConfig, at the user's key.
                    _ if input.peek(Token![=]) => {
                        input.parse::<Token![=]>()?;
                        args.defaults.push((key, input.parse()?));
                    }
                    other => {
                        return Err(syn::Error::new(
                            key.span(),
                            format!(
                                "unknown argument `{other}`; #[flammable::task] takes `no_main`, \
                                 `experiment = \"name\"`, `crate = path`, `non_finite_inputs` \
                                 and training defaults like `epochs = 20`"
                            ),
                        ))
                    }
                }
            }
            if !input.is_empty() {
                input.parse::<Token![,]>()?;
            }
        }
        Ok(args)
    }
}
