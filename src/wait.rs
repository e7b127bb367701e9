//! What a caller shows while another caller computes its key.
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::key::Key;
use crate::store::Holder;
use crate::warn;

/// A spinner on a terminal (never with `NO_COLOR`, never in a pipe).
pub struct Waiting(Option<ProgressBar>);

impl Waiting {
    pub fn start(key: &Key, holder: Option<&Holder>, verbose: bool) -> Waiting {
        let who = holder.map_or_else(
            || "another caller".to_string(),
            |h| format!("{} pid {}", h.host, h.pid),
        );
        if verbose {
            warn::line(&format!("waiting for {}: computed by {who}", key.short()));
        }
        if !crate::human::decorate_stderr() {
            return Waiting(None);
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template("{spinner} cachier: waiting {elapsed} for {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(who);
        bar.enable_steady_tick(Duration::from_millis(100));
        Waiting(Some(bar))
    }

    pub fn finish(self) {
        if let Some(bar) = self.0 {
            bar.finish_and_clear();
        }
    }
}
