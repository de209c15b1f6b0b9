//! Shared helpers of the examples live next to them; this library is empty on purpose.
