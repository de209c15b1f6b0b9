//! `serve` in a binary built without the `serve` feature: it takes any arguments, and the
//! command says in one line how to get the server ([`super::UNAVAILABLE`]).

use clap::Args;

/// The arguments of `serve`, whatever they are: this build cannot serve them.
#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn takes_any_arguments_and_names_the_feature() {
        let cli = Cli::try_parse_from(["serve", "latest", "--port", "80", "--max-batch-size", "8"]);
        assert!(cli.is_ok());
        let text = super::super::UNAVAILABLE;
        assert!(
            text.contains("`serve` feature") && !text.contains('\n'),
            "{text}"
        );
    }
}
