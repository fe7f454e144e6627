//! Events: the in-process exchange every service publishes to, and the
//! envelope filters subscribers use.

mod exchange;
mod topics;

pub use exchange::Exchange;
pub use topics::validate_topic;
