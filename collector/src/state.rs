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
}
