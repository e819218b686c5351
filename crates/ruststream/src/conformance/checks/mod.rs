//! The checks, grouped by what they hold a broker to.

pub(crate) mod capability;
pub(crate) mod delivery;
pub(crate) mod lifecycle;
pub(crate) mod settlement;
