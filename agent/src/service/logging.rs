//! Logging of the agent: standard error in the foreground; as a service,
//! daily rolling files (tracing-appender, a retention count) plus the system
//! log (journald, or the Windows Event Log) for start, stop and fatal errors.

use std::path::PathBuf;

use anyhow::Context as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::prelude::*;

/// The tracing target of service lifecycle records (start, stop, fatal
/// errors): these also go to the system log.
pub const LIFECYCLE: &str = "canhgac::service";

/// File name prefix of the rolling log files (`canhgac-agent.YYYY-MM-DD.log`).
pub const FILE_PREFIX: &str = "canhgac-agent";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for machines that ship their own logs.
    Json,
}

/// Where and how the agent logs.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LogOptions {
    /// Log line format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Write daily rolling log files here (as a service); start, stop and
    /// fatal errors then also go to journald or the Windows Event Log.
    #[arg(long)]
    pub log_dir: Option<PathBuf>,
    /// Rolling log files kept (one a day).
    #[arg(long, default_value_t = 14)]
    pub log_keep: usize,
}

/// Keeps the file writer flushing; drop it last.
pub struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

/// Whether a record also goes to the system log.
pub fn to_system_log(meta: &tracing::Metadata<'_>) -> bool {
    meta.target() == LIFECYCLE || *meta.level() == tracing::Level::ERROR
}

fn filter(level: &str) -> anyhow::Result<tracing_subscriber::EnvFilter> {
    tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .with_context(|| format!("log.level {level:?} is not a valid filter"))
}

type Boxed = Box<dyn tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync>;

fn fmt_layer<W>(writer: W, format: LogFormat, ansi: bool) -> Boxed
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let l = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    match format {
        LogFormat::Text => l.boxed(),
        LogFormat::Json => l.json().boxed(),
    }
}

/// Installs the global subscriber. Call once, before the runtime starts.
pub fn init(level: &str, opts: &LogOptions) -> anyhow::Result<Guard> {
    let Some(dir) = &opts.log_dir else {
        let layer = fmt_layer(std::io::stderr, opts.log_format, false).with_filter(filter(level)?);
        tracing_subscriber::registry().with(layer).try_init().ok();
        return Ok(Guard(None));
    };
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create the log dir {}", dir.display()))?;
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix(FILE_PREFIX)
        .filename_suffix("log")
        .max_log_files(opts.log_keep.max(1))
        .build(dir)
        .with_context(|| format!("cannot write logs in {}", dir.display()))?;
    let (nb, guard) = tracing_appender::non_blocking(appender);
    let file = fmt_layer(nb, opts.log_format, false)
        .with_filter(filter(level)?)
        .boxed();
    let system = system_layer(opts.log_format)
        .with_filter(tracing_subscriber::filter::filter_fn(to_system_log))
        .boxed();
    tracing_subscriber::registry()
        .with(vec![file, system])
        .try_init()
        .ok();
    Ok(Guard(Some(guard)))
}

/// journald when the agent runs under systemd, standard error otherwise.
#[cfg(unix)]
fn system_layer(format: LogFormat) -> Boxed {
    if std::env::var_os("JOURNAL_STREAM").is_some()
        && let Ok(j) = tracing_journald::layer()
    {
        return j.with_syslog_identifier(FILE_PREFIX.to_string()).boxed();
    }
    fmt_layer(std::io::stderr, format, false)
}

#[cfg(windows)]
fn system_layer(_format: LogFormat) -> Boxed {
    super::eventlog::Layer::new(super::SERVICE_NAME).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn only_lifecycle_and_errors_reach_the_system_log() {
        let buf = Buf::default();
        let w = buf.clone();
        let layer = fmt_layer(move || w.clone(), LogFormat::Text, false)
            .with_filter(tracing_subscriber::filter::filter_fn(to_system_log));
        let sub = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: LIFECYCLE, "agent started");
            tracing::info!("batch acknowledged");
            tracing::warn!("cannot deliver events; will retry");
            tracing::error!("cannot write to the spool");
            tracing::error!(target: LIFECYCLE, "fatal: no credentials");
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("agent started"), "{text}");
        assert!(text.contains("cannot write to the spool"), "{text}");
        assert!(text.contains("fatal: no credentials"), "{text}");
        assert!(!text.contains("batch acknowledged"), "{text}");
        assert!(!text.contains("will retry"), "{text}");
    }

    #[test]
    fn rolling_files_keep_what_is_logged_in_json() {
        let dir = std::env::temp_dir().join(format!("canhgac-logtest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let appender = tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix(FILE_PREFIX)
            .filename_suffix("log")
            .max_log_files(2)
            .build(&dir)
            .unwrap();
        let sub = tracing_subscriber::registry().with(fmt_layer(
            std::sync::Mutex::new(appender),
            LogFormat::Json,
            false,
        ));
        tracing::subscriber::with_default(sub, || tracing::info!(target: LIFECYCLE, answer = 42, "started"));
        let files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
        assert_eq!(files.len(), 1);
        let name = files[0].file_name().into_string().unwrap();
        assert!(
            name.starts_with("canhgac-agent.") && name.ends_with(".log"),
            "{name}"
        );
        let text = std::fs::read_to_string(files[0].path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(v["fields"]["message"], "started");
        assert_eq!(v["fields"]["answer"], 42);
        assert_eq!(v["target"], LIFECYCLE);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
