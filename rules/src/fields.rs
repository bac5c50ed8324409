//! The known-field list: field paths canhgac events and posture documents carry, plus common ECS
//! fields. A rule naming a field outside it still loads; `rules check` shows a warning, since the
//! usual cause is a typo (`antivirus.realtme`).

/// Exact known paths.
const KNOWN: &[&str] = &[
    "@timestamp",
    "message",
    "tags",
    // event
    "event.action",
    "event.category",
    "event.code",
    "event.created",
    "event.dataset",
    "event.duration",
    "event.end",
    "event.id",
    "event.ingested",
    "event.kind",
    "event.module",
    "event.original",
    "event.outcome",
    "event.provider",
    "event.reason",
    "event.sequence",
    "event.severity",
    "event.start",
    "event.type",
    // identity (events and posture documents)
    "agent.id",
    "agent.name",
    "agent.type",
    "agent.version",
    "host.id",
    "host.name",
    "host.hostname",
    "host.ip",
    "host.mac",
    "host.architecture",
    "host.os.family",
    "host.os.full",
    "host.os.kernel",
    "host.os.name",
    "host.os.platform",
    "host.os.type",
    "host.os.version",
    "host.uptime",
    // posture document
    "agent.silent_hours",
    "agent.cert_days_left",
    "agent.silent_hours_total",
    "agent.silent",
    "agent.dropped_total",
    "agent.sensors_inactive",
    "fim.baselined",
    "clock.offset_seconds",
    // antivirus
    "antivirus.present",
    "antivirus.enabled",
    "antivirus.realtime",
    "antivirus.signatures_up_to_date",
    "antivirus.signature_age_days",
    "antivirus.products",
    "antivirus.problems",
    "antivirus.product",
    "antivirus.source",
    "antivirus.threat",
    "antivirus.action",
    "antivirus.detected_at",
    "antivirus.log_source",
    // firewall
    "firewall.enabled",
    "firewall.default_inbound",
    "firewall.inbound_filtering",
    "firewall.profiles",
    "firewall.profile",
    "firewall.problems",
    "rule.name",
    // files
    "file.path",
    "file.name",
    "file.directory",
    "file.extension",
    "file.size",
    "file.type",
    "file.mode",
    "file.owner",
    "file.group",
    "file.uid",
    "file.gid",
    "file.inode",
    "file.mtime",
    "file.ctime",
    "file.target_path",
    "file.attributes",
    "file.hash.md5",
    "file.hash.sha1",
    "file.hash.sha256",
    // network
    "source.ip",
    "source.port",
    "source.address",
    "source.domain",
    "destination.ip",
    "destination.port",
    "destination.address",
    "destination.domain",
    "network.transport",
    "network.type",
    "network.protocol",
    "network.direction",
    "observer.ingress.interface.name",
    "dns.question.name",
    "url.full",
    "url.domain",
    "url.path",
    // processes, users, services
    "process.pid",
    "process.name",
    "process.executable",
    "process.command_line",
    "process.args",
    "process.working_directory",
    "process.hash.sha256",
    "process.parent.pid",
    "process.parent.name",
    "process.parent.executable",
    "process.parent.command_line",
    "user.name",
    "user.id",
    "user.domain",
    "user.target.name",
    "group.name",
    "service.name",
    "service.state",
    "service.type",
    "registry.path",
    "registry.key",
    "registry.value",
    "registry.data.strings",
    "package.name",
    "package.version",
    "log.level",
    "log.file.path",
    "error.message",
];

/// Known namespaces whose sub-fields vary (product lists, Windows event data, our own extensions).
const KNOWN_PREFIXES: &[&str] = &[
    "canhgac.",
    "labels.",
    "winlog.",
    "antivirus.products.",
    "firewall.profiles.",
    "related.",
    "threat.",
];

/// Whether `field` is in the known-field list.
pub(crate) fn is_known(field: &str) -> bool {
    KNOWN.contains(&field) || KNOWN_PREFIXES.iter().any(|p| field.starts_with(p))
}

/// The warning for an unknown field, with the closest known one when it is near.
pub(crate) fn unknown_message(field: &str) -> String {
    let hint = crate::rule::suggest(field, KNOWN)
        .map(|s| format!("; did you mean `{s}`?"))
        .unwrap_or_default();
    format!("field `{field}` is not in the known-field list (a typo?){hint}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_and_unknown() {
        assert!(is_known("antivirus.realtime"));
        assert!(is_known("canhgac.fim.root"));
        assert!(is_known("winlog.event_data.TargetUserName"));
        assert!(!is_known("antivirus.realtme"));
        assert!(unknown_message("antivirus.realtme").contains("did you mean `antivirus.realtime`"));
        assert!(!unknown_message("zzz.qqq").contains("did you mean"));
    }
}
