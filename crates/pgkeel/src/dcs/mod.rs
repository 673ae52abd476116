//! dcs (work in progress)
