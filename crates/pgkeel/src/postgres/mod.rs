//! postgres (work in progress)
