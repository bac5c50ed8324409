//! Shared state of a running collector.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::CollectorConfig;
use crate::pki::Ca;
use crate::store::Store;

pub struct App {
    pub store: Arc<dyn Store>,
    pub ca: Ca,
    pub config: CollectorConfig,
    pub data_dir: PathBuf,
}
