//! The text of a panic: what `panic!` was given, for the line that reports it.

use std::any::Any;

/// The message of a panic's payload (`catch_unwind`'s error, a thread's join error): the
/// `&str` or `String` that `panic!` formatted, else "unknown panic".
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_formatted_panics_and_others() {
        let message = |f: fn()| panic_message(&*std::panic::catch_unwind(f).unwrap_err());
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        assert_eq!(message(|| panic!("plain")), "plain");
        assert_eq!(message(|| panic!("{} {}", "formatted", 2)), "formatted 2");
        assert_eq!(message(|| std::panic::panic_any(7_u8)), "unknown panic");
        std::panic::set_hook(hook);
    }
}
