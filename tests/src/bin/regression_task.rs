//! The command line of the regression task of `tests/lib.rs`.

fn main() -> std::process::ExitCode {
    flammable::main::<flammable_tests::Regression>()
}
