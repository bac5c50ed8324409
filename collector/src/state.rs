//! Shared state of a running collector.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::CollectorConfig;
use crate::pki::Ca;
use crate::store::Store;

pub struct App {
    /// Woken after every committed batch, so rules run at once.
    pub rules_wake: Arc<tokio::sync::Notify>,
    pub store: Arc<dyn Store>,
    pub ca: Ca,
    pub config: CollectorConfig,
    pub data_dir: PathBuf,
    /// The rules in effect, as the rule worker last loaded them.
    pub rules: crate::rules_worker::SharedRules,
}

impl App {
    /// The rule set in effect now.
    pub fn rules(&self) -> Arc<canhgac_rules::RuleSet> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
