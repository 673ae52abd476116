//! ctl (work in progress)
