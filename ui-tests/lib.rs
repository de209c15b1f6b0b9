//! The trybuild cases are in `tests/ui/`; this library is empty on purpose.
