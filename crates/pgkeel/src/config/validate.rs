//! validate (stub)
