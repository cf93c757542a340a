//! What the message rules read besides the store: where contents and files come from, the
//! payment policy, the limits, and the time of the decision. The writer lends it to the rules
//! for each batch, so that no rule reaches back into the writer.

use crate::{ContentSource, PaymentPolicy, PipelineConfig};

pub(crate) struct Context<'a> {
    pub content: &'a dyn ContentSource,
    pub payments: &'a dyn PaymentPolicy,
    pub config: &'a PipelineConfig,
    /// Seconds since the epoch, from the pipeline's clock.
    pub now: f64,
}

impl Context<'_> {
    /// Until when a file whose last pin goes now is kept.
    pub(crate) fn grace_until(&self) -> f64 {
        self.now + self.config.file_grace_period_secs
    }
}
