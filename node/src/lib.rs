//! bitcraps-node: the validator node. (Grows with the node issue.)
#![forbid(unsafe_code)]

/// The version reported by `bitcraps version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
