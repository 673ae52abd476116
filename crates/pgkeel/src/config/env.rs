//! env (stub)
