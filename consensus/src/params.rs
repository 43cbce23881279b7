//! Protocol parameters (from genesis) and hard limits.
//!
//! Every queue, map and message in the core is bounded by a constant here or a
//! parameter. Units are in the names.

use serde::{Deserialize, Serialize};

/// Largest encoded wire message accepted (bytes). Checked before decoding.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024 * 1024;
/// Most nullified views a proposal may skip over (each needs a certificate in the
/// proposal's justification, so this bounds proposal size).
pub const MAX_VIEW_GAP: u64 = 256;
/// Votes and proposals further than this many views ahead of ours are ignored, so a
/// byzantine peer cannot make us allocate state for arbitrary future views.
pub const MAX_VIEWS_AHEAD: u64 = 512;
/// Most proposals for future views we buffer (each may carry a full payload, so
/// this bounds memory a byzantine leader can make us hold).
pub const MAX_FUTURE_PROPOSALS: usize = 16;
/// Most views whose votes we keep (older, unfinalized ones are dropped first).
pub const MAX_TRACKED_VIEWS: usize = 2048;
/// Most blocks kept in memory that are not yet committed.
pub const MAX_PENDING_BLOCKS: usize = 4096;
/// Most block ids we are fetching at once.
pub const MAX_WANTED_BLOCKS: usize = 256;
/// Requests for one missing block before we stop asking (each to the next peer).
pub const MAX_BLOCK_REQUEST_ATTEMPTS: u64 = 32;
/// Most blocks served in one response.
pub const MAX_BLOCKS_PER_RESPONSE: u16 = 64;
/// Evidence records kept (oldest dropped).
pub const MAX_EVIDENCE: usize = 1024;
/// Verified-certificate cache entries.
pub const MAX_VERIFIED_CACHE: usize = 4096;
/// Most validators in a set (bitmap and index width).
pub const MAX_VALIDATORS: usize = 1024;

/// Tunable parameters, fixed at genesis so every validator agrees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Timer for a view with an honest, reachable leader (Simplex's 3Δ).
    pub view_timeout_ms: u64,
    /// Ceiling for the backed-off view timer.
    pub max_view_timeout_ms: u64,
    /// After nullifying, rebroadcast our votes and latest certificates this often
    /// until the view advances (recovers from message loss).
    pub retry_interval_ms: u64,
    /// Largest block payload (bytes).
    pub max_payload_bytes: u32,
    /// A proposal's timestamp may be at most this far ahead of our clock.
    pub max_clock_drift_ms: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            view_timeout_ms: 1_000,
            max_view_timeout_ms: 30_000,
            retry_interval_ms: 500,
            max_payload_bytes: 4 * 1024 * 1024,
            max_clock_drift_ms: 2_000,
        }
    }
}

impl Params {
    /// Checks ranges; returns a human-readable reason on failure.
    pub fn validate(&self) -> Result<(), String> {
        if self.view_timeout_ms == 0 || self.retry_interval_ms == 0 {
            return Err("view_timeout_ms and retry_interval_ms must be > 0".into());
        }
        if self.max_view_timeout_ms < self.view_timeout_ms {
            return Err("max_view_timeout_ms must be >= view_timeout_ms".into());
        }
        if self.max_payload_bytes as usize > MAX_MESSAGE_BYTES / 2 {
            return Err(format!(
                "max_payload_bytes must be <= {} (half the frame limit)",
                MAX_MESSAGE_BYTES / 2
            ));
        }
        Ok(())
    }

    /// Backed-off timer for a view that follows `skipped` views without a
    /// notarization: doubles per skipped view, capped.
    pub fn timeout_for(&self, skipped: u64) -> u64 {
        let factor = 1u64 << skipped.min(16);
        self.view_timeout_ms
            .saturating_mul(factor)
            .min(self.max_view_timeout_ms)
    }
}
