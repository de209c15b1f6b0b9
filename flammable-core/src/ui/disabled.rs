//! `ui` in a binary built without the `ui` feature: it takes any arguments and says, in one
//! line, how to get the browser.

use crate::error::{Error, Result};
use crate::store::Store;
use clap::Args;
use std::process::ExitCode;

/// The arguments of `ui`, whatever they are: this build cannot serve them.
#[derive(Args, Debug)]
pub struct UiArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

/// Refuses, naming the `flammable` binary and the feature (exit code 2).
pub fn run(_store: &Store, _args: UiArgs, _quiet: bool) -> Result<ExitCode> {
    Err(Error::usage(super::UNAVAILABLE))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ui: UiArgs,
    }

    #[test]
    fn takes_any_arguments_and_says_how_to_get_the_browser() {
        let cli = Cli::try_parse_from(["ui", "--host", "0.0.0.0", "--port", "80", "--open"]);
        let args = cli.map(|c| c.ui).unwrap_or_else(|e| panic!("{e}"));
        let err = run(&Store::at("/nonexistent"), args, false).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let text = err.to_string();
        assert!(
            text.contains("flammable ui") && text.contains("`ui` feature"),
            "{text}"
        );
        assert!(!text.contains('\n'));
    }
}
