//! The console's words in Vietnamese (the default) and English.
//!
//! Every text a page shows goes through [`tr`]; rule titles and remediation
//! come from the rules themselves, which carry both languages.

use std::fmt;

/// The console's languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Vi,
    En,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "vi" => Some(Lang::Vi),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn other(self) -> Lang {
        match self {
            Lang::Vi => Lang::En,
            Lang::En => Lang::Vi,
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// (key, Vietnamese, English).
const WORDS: &[(&str, &str, &str)] = &[
    (
        "app.name",
        "canhgac — giám sát an toàn thông tin",
        "canhgac — security monitoring",
    ),
    ("lang.switch", "English", "Tiếng Việt"),
    ("nav.overview", "Tổng quan", "Overview"),
    ("nav.alerts", "Cảnh báo", "Alerts"),
    ("nav.agents", "Máy trạm", "Agents"),
    ("nav.rules", "Luật", "Rules"),
    ("nav.reports", "Báo cáo", "Reports"),
    ("nav.audit", "Nhật ký thao tác", "Audit log"),
    ("nav.admin", "Quản trị", "Administration"),
    ("nav.logout", "Đăng xuất", "Log out"),
    ("login.title", "Đăng nhập", "Log in"),
    ("login.user", "Tên đăng nhập", "User name"),
    ("login.password", "Mật khẩu", "Password"),
    ("login.submit", "Đăng nhập", "Log in"),
    (
        "login.wrong",
        "Sai tên đăng nhập hoặc mật khẩu.",
        "Wrong user name or password.",
    ),
    (
        "login.locked",
        "Tài khoản tạm bị khoá do đăng nhập sai nhiều lần, đến",
        "The account is locked after repeated failures until",
    ),
    ("role.admin", "quản trị", "admin"),
    ("role.officer", "cán bộ an toàn thông tin", "security officer"),
    ("role.viewer", "chỉ xem", "viewer"),
    ("sev.critical", "Nghiêm trọng", "Critical"),
    ("sev.high", "Cao", "High"),
    ("sev.medium", "Trung bình", "Medium"),
    ("sev.low", "Thấp", "Low"),
    ("sev.info", "Thông tin", "Info"),
    ("status.open", "Mới", "Open"),
    ("status.acknowledged", "Đã tiếp nhận", "Acknowledged"),
    ("status.suppressed", "Tạm ẩn", "Suppressed"),
    ("status.resolved", "Đã xử lý", "Resolved"),
    ("agent.online", "Đang hoạt động", "Online"),
    ("agent.silent", "Mất liên lạc", "Silent"),
    ("agent.never-seen", "Chưa kết nối", "Never seen"),
    ("agent.revoked", "Đã thu hồi", "Revoked"),
    ("agent.unhealthy", "Có cảm biến lỗi", "Unhealthy"),
    (
        "ov.active_alerts",
        "Cảnh báo đang mở theo mức độ",
        "Open alerts by severity",
    ),
    ("ov.agents", "Máy trạm", "Agents"),
    (
        "ov.compliance",
        "Mức tuân thủ theo nhóm và cấp độ",
        "Compliance by group and level",
    ),
    (
        "ov.per_day",
        "Cảnh báo mỗi ngày trong 30 ngày qua",
        "Alerts per day over the last 30 days",
    ),
    (
        "ov.per_group",
        "Tỷ lệ máy đạt yêu cầu theo nhóm",
        "Share of compliant machines per group",
    ),
    ("ov.total", "Tổng", "Total"),
    ("col.id", "Mã", "ID"),
    ("col.severity", "Mức độ", "Severity"),
    ("col.status", "Trạng thái", "Status"),
    ("col.title", "Nội dung", "Title"),
    ("col.host", "Máy", "Host"),
    ("col.group", "Nhóm", "Group"),
    ("col.level", "Cấp độ", "Level"),
    ("col.rule", "Luật", "Rule"),
    ("col.count", "Số lần", "Count"),
    ("col.first_seen", "Lần đầu", "First seen"),
    ("col.last_seen", "Lần cuối", "Last seen"),
    ("col.assignee", "Người phụ trách", "Assignee"),
    ("col.clock", "Hạn báo cáo sự cố", "Incident-report deadline"),
    ("col.os", "Hệ điều hành", "OS"),
    ("col.antivirus", "Phòng chống mã độc", "Antivirus"),
    ("col.firewall", "Tường lửa", "Firewall"),
    ("col.fim", "Toàn vẹn tệp", "File integrity"),
    ("col.version", "Phiên bản", "Version"),
    ("col.time", "Thời gian", "Time"),
    ("col.actor", "Người thực hiện", "Who"),
    ("col.action", "Thao tác", "Action"),
    ("col.target", "Đối tượng", "Target"),
    ("col.detail", "Chi tiết", "Detail"),
    ("col.note", "Ghi chú", "Note"),
    ("col.kind", "Loại", "Kind"),
    ("col.enabled", "Bật", "Enabled"),
    ("col.controls", "Điều khoản", "Clauses"),
    ("col.name", "Tên", "Name"),
    ("col.role", "Vai trò", "Role"),
    ("col.created", "Tạo lúc", "Created"),
    ("col.expires", "Hết hạn", "Expires"),
    ("col.uses", "Đã dùng", "Uses"),
    ("col.machines", "Số máy", "Machines"),
    ("col.met", "Đạt", "Met"),
    ("col.not_met", "Chưa đạt", "Not met"),
    ("col.evidence", "Bằng chứng", "Evidence"),
    ("col.requirement", "Yêu cầu", "Requirement"),
    ("col.compliance", "Tuân thủ", "Compliance"),
    ("col.alerts_period", "Cảnh báo trong kỳ", "Alerts in period"),
    ("f.filter", "Lọc", "Filter"),
    ("f.any", "— tất cả —", "— any —"),
    ("f.from", "Từ ngày", "From"),
    ("f.to", "Đến ngày", "To"),
    ("f.host_part", "Tên máy chứa", "Host name contains"),
    ("a.ack", "Tiếp nhận", "Acknowledge"),
    (
        "a.ack_selected",
        "Tiếp nhận các cảnh báo đã chọn",
        "Acknowledge selected",
    ),
    ("a.resolve", "Đóng cảnh báo", "Resolve"),
    (
        "a.resolve_note",
        "Đã xử lý thế nào (bắt buộc)",
        "What was done (required)",
    ),
    ("a.suppress", "Tạm ẩn đến", "Suppress until"),
    ("a.reopen", "Mở lại", "Reopen"),
    ("a.assign", "Giao cho", "Assign to"),
    ("a.nobody", "— chưa giao —", "— nobody —"),
    ("a.save", "Lưu", "Save"),
    ("a.none", "Không có cảnh báo nào khớp.", "No alerts match."),
    ("a.description", "Mô tả", "Description"),
    ("a.remediation", "Cách khắc phục", "Remediation"),
    ("a.evidence", "Sự kiện làm bằng chứng", "Evidence events"),
    ("a.latest", "Dữ liệu mới nhất", "Latest data"),
    ("a.history", "Lịch sử xử lý", "History"),
    ("a.clock_left", "còn", "left"),
    ("a.clock_over", "đã quá hạn", "overdue by"),
    ("a.clock_first", "thông báo ban đầu", "first notice"),
    (
        "a.clock_report",
        "báo cáo nguyên nhân, phạm vi, khắc phục",
        "report on cause, scope and fixes",
    ),
    (
        "a.clock_nd85",
        "thông báo cho chủ quản và cơ quan điều phối",
        "notice to the owner and national coordinator",
    ),
    ("a.shown", "Hiển thị", "Showing"),
    ("a.of", "trên", "of"),
    ("a.next", "Trang sau", "Next page"),
    ("a.prev", "Trang trước", "Previous page"),
    ("ag.token", "Tạo mã đăng ký tác tử", "Create an enrollment token"),
    ("ag.token_uses", "Số máy được dùng", "Machines it may enroll"),
    ("ag.token_ttl", "Hiệu lực", "Valid for"),
    (
        "ag.token_made",
        "Mã đăng ký (chỉ hiện một lần, hãy sao chép ngay):",
        "Enrollment token (shown once; copy it now):",
    ),
    (
        "ag.token_install",
        "Cài tác tử trên Windows:",
        "Install the agent on Windows:",
    ),
    ("ag.move", "Chuyển sang nhóm", "Move to group"),
    ("ag.revoke", "Thu hồi tác tử", "Revoke agent"),
    (
        "ag.revoke_confirm",
        "Tôi chắc chắn muốn thu hồi",
        "I am sure I want to revoke it",
    ),
    ("ag.recent", "Sự kiện gần đây", "Recent events"),
    ("ag.tokens", "Mã đăng ký", "Enrollment tokens"),
    (
        "ag.none",
        "Chưa có máy nào đăng ký.",
        "No agent has enrolled yet.",
    ),
    ("ag.sensors", "Cảm biến", "Sensors"),
    ("ag.open_alerts", "Cảnh báo đang mở", "Open alerts"),
    ("ag.baselined", "đã lập cơ sở", "baseline taken"),
    ("ag.no_baseline", "chưa lập cơ sở", "no baseline"),
    ("ag.fw_on", "bật", "on"),
    ("ag.fw_off", "tắt", "off"),
    ("ag.av_none", "không có", "none"),
    ("ag.av_off", "đang tắt", "off"),
    ("ag.sig_days", "ngày tuổi mẫu nhận diện", "days since signatures"),
    ("ag.unknown", "chưa rõ", "unknown"),
    ("r.level", "Cấp độ", "Level"),
    ("r.effective", "Luật áp dụng ở cấp độ", "Rules in effect at level"),
    ("r.enable", "Bật", "Enable"),
    ("r.disable", "Tắt", "Disable"),
    ("r.default", "Theo mặc định", "Default"),
    ("r.on", "đang bật", "on"),
    ("r.off", "đang tắt", "off"),
    ("r.params", "Tham số", "Parameters"),
    ("rep.title", "Báo cáo tuân thủ", "Compliance report"),
    ("rep.period", "Kỳ báo cáo", "Period"),
    ("rep.make", "Lập báo cáo", "Make report"),
    ("rep.csv", "Tải CSV", "Download CSV"),
    ("rep.json", "Tải JSON", "Download JSON"),
    (
        "rep.print",
        "In báo cáo: dùng chức năng In của trình duyệt.",
        "To print, use the browser's Print command.",
    ),
    ("rep.by_req", "Theo yêu cầu", "By requirement"),
    ("rep.by_machine", "Theo máy", "By machine"),
    (
        "rep.stats",
        "Thống kê cảnh báo trong kỳ",
        "Alert statistics for the period",
    ),
    ("rep.annual", "Dự thảo báo cáo năm", "Annual report draft"),
    (
        "rep.annual_year",
        "Năm báo cáo (15/12 năm trước đến 14/12)",
        "Reporting year (15 December to 14 December)",
    ),
    ("rep.fully", "Tuân thủ đầy đủ", "Fully compliant"),
    ("rep.partly", "Tuân thủ một phần", "Partly compliant"),
    ("rep.not", "Chưa tuân thủ", "Not compliant"),
    (
        "rep.annual_note",
        "Dự thảo do hệ thống lập từ dữ liệu giám sát; đơn vị rà soát, bổ sung trước khi gửi chủ quản hệ thống (trước 20/12).",
        "Draft made from the monitoring data; the unit reviews and completes it before sending it to the system owner (before 20 December).",
    ),
    (
        "rep.no_machines",
        "Nhóm chưa có máy.",
        "The group has no machines.",
    ),
    ("rep.failing", "Máy chưa đạt", "Machines not meeting it"),
    ("rep.no_data", "chưa có dữ liệu", "no data"),
    ("rep.all", "Tất cả các nhóm", "All groups"),
    ("adm.users", "Người dùng", "Users"),
    ("adm.add_user", "Thêm người dùng", "Add a user"),
    (
        "adm.user_made",
        "Mật khẩu ban đầu (chỉ hiện một lần):",
        "Initial password (shown once):",
    ),
    (
        "adm.api_tokens",
        "Mã truy cập API cho script",
        "API tokens for scripts",
    ),
    (
        "adm.api_made",
        "Mã truy cập API (chỉ hiện một lần):",
        "API token (shown once):",
    ),
    ("adm.create", "Tạo", "Create"),
    ("adm.revoke", "Thu hồi", "Revoke"),
    ("adm.groups", "Nhóm và cấp độ", "Groups and levels"),
    ("adm.set_level", "Đặt cấp độ", "Set level"),
    ("adm.new_group", "Nhóm mới", "New group"),
    ("adm.channels", "Kênh thông báo", "Notification channels"),
    (
        "adm.deliveries",
        "Lần gửi thông báo gần đây",
        "Recent notification deliveries",
    ),
    ("acc.title", "Tài khoản của tôi", "My account"),
    ("acc.change", "Đổi mật khẩu", "Change password"),
    ("acc.current", "Mật khẩu hiện tại", "Current password"),
    (
        "acc.new",
        "Mật khẩu mới (ít nhất 12 ký tự)",
        "New password (at least 12 characters)",
    ),
    ("acc.repeat", "Nhập lại mật khẩu mới", "New password again"),
    (
        "acc.mismatch",
        "Hai mật khẩu mới không giống nhau.",
        "The two new passwords differ.",
    ),
    (
        "acc.short",
        "Mật khẩu mới phải có ít nhất 12 ký tự.",
        "The new password must have at least 12 characters.",
    ),
    ("adm.reset", "Cấp lại mật khẩu", "Reset password"),
    ("adm.failures", "Lỗi gần đây", "Recent failures"),
    ("adm.test", "Gửi thử", "Send a test"),
    ("adm.delete", "Xoá", "Delete"),
    (
        "adm.channel_toml",
        "Thêm hoặc sửa kênh (cú pháp như [[notify.channels]] trong collector.toml)",
        "Add or change a channel (same syntax as [[notify.channels]] in collector.toml)",
    ),
    ("col.destination", "Gửi tới", "Destination"),
    ("adm.openapi", "Mô tả API (OpenAPI)", "API description (OpenAPI)"),
    ("msg.done", "Đã lưu.", "Saved."),
    (
        "msg.denied",
        "Vai trò của bạn không được phép thao tác này.",
        "Your role may not do this.",
    ),
    (
        "msg.csrf",
        "Biểu mẫu đã hết hạn hoặc không hợp lệ; hãy tải lại trang và thử lại.",
        "The form has expired or is not valid; reload the page and try again.",
    ),
    ("msg.not_found", "Không tìm thấy.", "Not found."),
    ("msg.error", "Lỗi", "Error"),
    ("msg.never", "chưa bao giờ", "never"),
    ("msg.yes", "có", "yes"),
    ("msg.no", "không", "no"),
];

/// The text for `key` in `lang`; the key itself when it is unknown (a bug
/// that the unit tests catch for every key the pages use).
pub fn tr(lang: Lang, key: &str) -> &str {
    match WORDS.iter().find(|(k, _, _)| *k == key) {
        Some((_, vi, en)) => match lang {
            Lang::Vi => vi,
            Lang::En => en,
        },
        None => {
            debug_assert!(false, "missing translation key {key}");
            key
        }
    }
}

/// Whether `key` has a translation.
pub fn has(key: &str) -> bool {
    WORDS.iter().any(|(k, _, _)| *k == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_both_languages_present() {
        let mut seen = std::collections::HashSet::new();
        for (k, vi, en) in WORDS {
            assert!(seen.insert(*k), "duplicate key {k}");
            assert!(
                !vi.trim().is_empty() && !en.trim().is_empty(),
                "{k} lacks a language"
            );
        }
        assert_eq!(tr(Lang::Vi, "nav.alerts"), "Cảnh báo");
        assert_eq!(tr(Lang::En, "nav.alerts"), "Alerts");
        assert_eq!(Lang::parse("en"), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::default(), Lang::Vi);
    }

    /// Every `tr(…, "key")` in the console's sources names a key that exists.
    #[test]
    fn every_key_used_by_the_pages_exists() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/web");
        let re = regex::Regex::new(r#"\b(?:tr|t)\([a-z_.]*,?\s*"([a-z_.0-9-]+)"\)"#).unwrap();
        let mut used = 0;
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            for c in re.captures_iter(&text) {
                used += 1;
                assert!(has(&c[1]), "{}: unknown key {}", entry.path().display(), &c[1]);
            }
        }
        assert!(used > 50, "expected the pages to use many keys, found {used}");
    }
}
