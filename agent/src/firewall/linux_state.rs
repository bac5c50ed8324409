//! Host firewall state on Linux: nftables, iptables, ufw and firewalld.
//!
//! Pure parsers for what the tools print, and [`collect`], which runs the
//! tools found on the host (each with a timeout) and decides whether inbound
//! traffic is filtered at all.
//!
//! nftables and iptables-nft show the same kernel ruleset, so a host with
//! iptables rules lists both an `iptables` and an `nftables` profile. That is
//! fine: the verdict ([`FwState::inbound_filtering`]) asks whether *any* view
//! shows filtering, so nothing is counted twice.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::model::{FwProfile, FwState};

/// How long one tool may run before it is killed.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the tools are looked for (never through `PATH`).
pub const TOOL_DIRS: [&str; 3] = ["/usr/sbin", "/sbin", "/usr/bin"];

/// Output kept from one tool; a ruleset dump larger than this is refused.
const MAX_TOOL_OUTPUT: usize = 16 * 1024 * 1024;

/// A firewall profile and whether it shows inbound traffic being filtered:
/// a default of drop on inbound traffic, or rules on the inbound path that
/// drop or reject some of it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assessment {
    pub profile: FwProfile,
    pub filters_inbound: bool,
}

// --- nftables -----------------------------------------------------------------

/// Parses `nft -j list ruleset` (profile `nftables`).
///
/// * `enabled`: there is at least one base chain on the inbound path (`hook
///   input`, or `hook ingress`) of type `filter`.
/// * `default_inbound`: `block` if any such chain has `policy drop` (a drop in
///   any base chain is final), else `allow`; `default_outbound` likewise from
///   `hook output` chains.
/// * `rules`: the number of rules in all tables.
///
/// An empty or flushed ruleset (`{"nftables": [{"metainfo": …}]}`) is a
/// disabled profile with 0 rules.
pub fn parse_nft_json(json: &str) -> Result<FwProfile, String> {
    assess_nft_json(json).map(|a| a.profile)
}

/// [`parse_nft_json`], and whether inbound traffic is filtered: an inbound
/// base chain with policy drop, or a `drop`/`reject` verdict in a rule of an
/// inbound base chain or of a chain reachable from one by `jump`/`goto`
/// (verdict maps included). Drops of `ct state invalid` packets alone do not
/// count: every stateful ruleset has them, and they filter nothing a peer can
/// choose to send.
pub fn assess_nft_json(json: &str) -> Result<Assessment, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("nft output is not JSON: {e}"))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or("nft output has no `nftables` list")?;

    type Key<'a> = (&'a str, &'a str, &'a str);
    struct BaseChain<'a> {
        key: Key<'a>,
        hook: &'a str,
        policy: &'a str,
    }
    fn s<'a>(o: &'a Value, k: &str) -> Option<&'a str> {
        o.get(k).and_then(Value::as_str)
    }
    let mut bases: Vec<BaseChain> = Vec::new();
    let mut rules: HashMap<Key, Vec<RuleInfo>> = HashMap::new();
    let mut rule_count: u64 = 0;
    for item in items {
        if let Some(c) = item.get("chain") {
            let key = (
                s(c, "family").unwrap_or(""),
                s(c, "table").unwrap_or(""),
                s(c, "name").unwrap_or(""),
            );
            if let Some(hook) = s(c, "hook")
                && s(c, "type").is_none_or(|t| t == "filter")
            {
                bases.push(BaseChain {
                    key,
                    hook,
                    policy: s(c, "policy").unwrap_or("accept"),
                });
            }
        } else if let Some(r) = item.get("rule") {
            rule_count += 1;
            let key = (
                s(r, "family").unwrap_or(""),
                s(r, "table").unwrap_or(""),
                s(r, "chain").unwrap_or(""),
            );
            let mut info = RuleInfo::default();
            if let Some(expr) = r.get("expr") {
                scan_nft_expr(expr, &mut info);
                if info.drops && is_ct_invalid_only(expr) {
                    info.drops = false;
                }
            }
            rules.entry(key).or_default().push(info);
        }
    }

    let inbound: Vec<&BaseChain> = bases
        .iter()
        .filter(|b| matches!(b.hook, "input" | "ingress"))
        .collect();
    let outbound: Vec<&BaseChain> = bases.iter().filter(|b| b.hook == "output").collect();
    let default_of = |chains: &[&BaseChain]| {
        if chains.iter().any(|c| c.policy == "drop") {
            Some("block".to_string())
        } else if chains.is_empty() {
            None
        } else {
            Some("allow".to_string())
        }
    };

    // Chains reachable from the inbound base chains.
    let mut seen: HashSet<Key> = inbound.iter().map(|b| b.key).collect();
    let mut queue: VecDeque<Key> = seen.iter().copied().collect();
    let mut drops = false;
    while let Some(key) = queue.pop_front() {
        for rule in rules.get(&key).map(Vec::as_slice).unwrap_or_default() {
            drops |= rule.drops;
            for target in &rule.targets {
                let next = (key.0, key.1, *target);
                if seen.insert(next) {
                    queue.push_back(next);
                }
            }
        }
    }

    let profile = FwProfile {
        name: "nftables".into(),
        enabled: !inbound.is_empty(),
        default_inbound: default_of(&inbound),
        default_outbound: default_of(&outbound),
        rules: Some(rule_count),
    };
    let filters_inbound = inbound.iter().any(|b| b.policy == "drop") || drops;
    Ok(Assessment {
        profile,
        filters_inbound,
    })
}

/// What a rule does, as far as the verdict is concerned.
#[derive(Debug, Default)]
struct RuleInfo<'a> {
    /// Has a `drop` or `reject` verdict.
    drops: bool,
    /// Chains it jumps to or goes to.
    targets: Vec<&'a str>,
}

/// Finds verdicts anywhere in a rule's expressions, verdict maps included.
fn scan_nft_expr<'a>(v: &'a Value, info: &mut RuleInfo<'a>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                match k.as_str() {
                    "drop" | "reject" => info.drops = true,
                    "jump" | "goto" => {
                        if let Some(t) = val.get("target").and_then(Value::as_str) {
                            info.targets.push(t);
                        }
                    }
                    "vmap" if is_ct_state(val.get("key")) => {
                        // `ct state vmap { invalid : drop, … }`: skip the
                        // `invalid` entries, look at the others.
                        let entries = val
                            .get("data")
                            .and_then(|d| d.get("set"))
                            .and_then(Value::as_array);
                        for entry in entries.map(Vec::as_slice).unwrap_or_default() {
                            let is_invalid = entry.get(0).and_then(Value::as_str) == Some("invalid");
                            if !is_invalid && let Some(verdict) = entry.get(1) {
                                scan_nft_expr(verdict, info);
                            }
                        }
                        continue;
                    }
                    _ => {}
                }
                scan_nft_expr(val, info);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| scan_nft_expr(x, info)),
        _ => {}
    }
}

fn is_ct_state(v: Option<&Value>) -> bool {
    v.and_then(|k| k.get("ct"))
        .and_then(|c| c.get("key"))
        .and_then(Value::as_str)
        == Some("state")
}

/// A rule matching `ct state invalid` (and only that state).
fn is_ct_invalid_only(expr: &Value) -> bool {
    expr.as_array().is_some_and(|a| {
        a.iter().any(|e| {
            let Some(m) = e.get("match") else { return false };
            let right = m.get("right");
            let only_invalid = match right {
                Some(Value::String(s)) => s == "invalid",
                Some(Value::Array(a)) => a.len() == 1 && a[0] == "invalid",
                Some(Value::Object(o)) => o.get("set").is_some_and(|s| *s == serde_json::json!(["invalid"])),
                _ => false,
            };
            is_ct_state(m.get("left")) && only_invalid && m.get("op").and_then(Value::as_str) != Some("!=")
        })
    })
}

// --- iptables -----------------------------------------------------------------

/// Parses `iptables-save` (or `ip6tables-save`) output (profile `iptables`).
///
/// Only the `*filter` table matters: `enabled` when inbound traffic is
/// filtered (policy `DROP` on `INPUT`, or `-j DROP`/`-j REJECT` in `INPUT`
/// or in a chain reachable from it by `-j`/`-g`, not counting drops of
/// `--ctstate INVALID` packets alone); defaults from the `INPUT` and `OUTPUT`
/// policies (`DROP` → `block`, `ACCEPT` → `allow`); `rules` = number of `-A`
/// lines in the filter table. Empty output (no tables loaded) is a disabled
/// profile with 0 rules.
pub fn parse_iptables_save(text: &str) -> FwProfile {
    assess_iptables_save(text).profile
}

/// [`parse_iptables_save`] with its verdict (the same as `enabled`).
pub fn assess_iptables_save(text: &str) -> Assessment {
    ipt_summary(text).assessment
}

/// What `iptables-save` shows, beyond the profile.
struct IptSummary {
    assessment: Assessment,
    /// Chains of the filter table.
    chains: HashSet<String>,
    /// iptables-nft says that legacy tables exist too.
    legacy_present: bool,
}

fn ipt_summary(text: &str) -> IptSummary {
    let mut table: Option<&str> = None;
    let mut policies: HashMap<&str, &str> = HashMap::new();
    let mut chains: HashSet<String> = HashSet::new();
    // chain → (target, counts as a drop)
    let mut rules: HashMap<String, Vec<(Option<String>, bool)>> = HashMap::new();
    let mut rule_count = 0u64;
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('*') {
            table = Some(name.trim());
            continue;
        }
        if line == "COMMIT" {
            table = None;
            continue;
        }
        if table != Some("filter") {
            continue;
        }
        if let Some(decl) = line.strip_prefix(':') {
            let mut parts = decl.split_ascii_whitespace();
            if let (Some(chain), Some(policy)) = (parts.next(), parts.next()) {
                policies.insert(chain, policy);
                chains.insert(chain.to_string());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            rule_count += 1;
            let args = split_args(rule);
            let Some(chain) = args.first() else { continue };
            let target =
                option_value(&args, &["-j", "--jump"]).or_else(|| option_value(&args, &["-g", "--goto"]));
            let invalid_only = args.windows(2).enumerate().any(|(i, w)| {
                matches!(w[0].as_str(), "--ctstate" | "--state")
                    && w[1] == "INVALID"
                    && (i == 0 || args[i - 1] != "!")
            });
            let drops = matches!(target, Some("DROP" | "REJECT")) && !invalid_only;
            rules
                .entry(chain.clone())
                .or_default()
                .push((target.map(String::from), drops));
        }
    }

    let mut seen: HashSet<String> = HashSet::from(["INPUT".to_string()]);
    let mut queue: VecDeque<String> = VecDeque::from(["INPUT".to_string()]);
    let mut drops = false;
    while let Some(chain) = queue.pop_front() {
        for (target, d) in rules.get(&chain).map(Vec::as_slice).unwrap_or_default() {
            drops |= *d;
            if let Some(t) = target
                && rules.contains_key(t)
                && seen.insert(t.clone())
            {
                queue.push_back(t.clone());
            }
        }
    }
    let policy = |chain: &str| match policies.get(chain).copied() {
        Some("DROP" | "REJECT") => Some("block".to_string()),
        Some("ACCEPT") => Some("allow".to_string()),
        _ => None,
    };
    let filters = policies.get("INPUT") == Some(&"DROP") || drops;
    IptSummary {
        assessment: Assessment {
            profile: FwProfile {
                name: "iptables".into(),
                enabled: filters,
                default_inbound: policy("INPUT"),
                default_outbound: policy("OUTPUT"),
                rules: Some(rule_count),
            },
            filters_inbound: filters,
        },
        chains,
        legacy_present: text.contains("iptables-legacy tables present"),
    }
}

/// The value after the first of `names` in `args`.
fn option_value<'a>(args: &'a [String], names: &[&str]) -> Option<&'a str> {
    let i = args.iter().position(|a| names.contains(&a.as_str()))?;
    args.get(i + 1).map(String::as_str)
}

/// Splits an iptables-save rule into words; `"…"` quotes (with `\"` inside)
/// as iptables-save writes them around comments and log prefixes.
fn split_args(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                if let Some(next) = chars.next() {
                    cur.push(next);
                }
            }
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    out
}

// --- ufw and firewalld ---------------------------------------------------------

/// Parses `ufw status verbose` (profile `ufw`), run with `LC_ALL=C` (ufw
/// translates its output). `Status: active` → enabled; `Default: deny
/// (incoming), allow (outgoing), disabled (routed)` → `default_inbound`
/// `block` (deny or reject) / `allow`; `rules` = lines of the rule table when
/// active.
pub fn parse_ufw_status(text: &str) -> FwProfile {
    assess_ufw_status(text).profile
}

/// [`parse_ufw_status`], filtering when active with a default of deny or
/// reject for incoming traffic, or with a `DENY`/`REJECT`/`LIMIT` rule for
/// incoming traffic.
pub fn assess_ufw_status(text: &str) -> Assessment {
    let mut active = false;
    let mut default_inbound = None;
    let mut default_outbound = None;
    let mut rules = 0u64;
    let mut in_table = false;
    let mut denies_in = false;
    for line in text.lines().map(str::trim) {
        if let Some(status) = line.strip_prefix("Status:") {
            active = status.trim() == "active";
        } else if let Some(defaults) = line.strip_prefix("Default:") {
            for part in defaults.split(',') {
                let Some((policy, direction)) = part.trim().split_once(" (") else {
                    continue;
                };
                let policy = match policy.trim() {
                    "deny" | "reject" => Some("block".to_string()),
                    "allow" => Some("allow".to_string()),
                    _ => None,
                };
                match direction.trim_end_matches(')') {
                    "incoming" => default_inbound = policy,
                    "outgoing" => default_outbound = policy,
                    _ => {}
                }
            }
        } else if line.starts_with("--") {
            in_table = true;
        } else if in_table && !line.is_empty() {
            rules += 1;
            let words: Vec<&str> = line.split_whitespace().collect();
            if let Some(i) = words
                .iter()
                .position(|w| matches!(*w, "ALLOW" | "DENY" | "REJECT" | "LIMIT"))
                && words[i] != "ALLOW"
                && !matches!(words.get(i + 1), Some(&"OUT") | Some(&"FWD"))
            {
                denies_in = true;
            }
        }
    }
    let filters = active && (default_inbound.as_deref() == Some("block") || denies_in);
    Assessment {
        profile: FwProfile {
            name: "ufw".into(),
            enabled: active,
            default_inbound: default_inbound.filter(|_| active),
            default_outbound: default_outbound.filter(|_| active),
            rules: active.then_some(rules),
        },
        filters_inbound: filters,
    }
}

/// Parses `firewall-cmd --state` (profile `firewalld`): `running` or `not
/// running`.
pub fn parse_firewalld_state(text: &str) -> FwProfile {
    assess_firewalld_state(text).profile
}

/// [`parse_firewalld_state`]; a running firewalld counts as filtering, since
/// its zones reject unsolicited inbound traffic unless set to `trusted`.
/// (When nftables is readable, [`collect`] judges firewalld's rules there
/// instead.)
pub fn assess_firewalld_state(text: &str) -> Assessment {
    let running = text.trim() == "running";
    Assessment {
        profile: FwProfile {
            name: "firewalld".into(),
            enabled: running,
            ..FwProfile::default()
        },
        filters_inbound: running,
    }
}

// --- Collector ----------------------------------------------------------------

/// Reads the host firewall state with the tools found in [`TOOL_DIRS`]:
/// `nft -j list ruleset`, `iptables-save` and `ip6tables-save` (and their
/// `-legacy` forms when iptables-nft reports legacy tables), `ufw status
/// verbose`, `firewall-cmd --state`. Each runs with `LC_ALL=C`, no inherited
/// environment and a [`TOOL_TIMEOUT`]. Blocks for as long as the tools take:
/// call it from a blocking thread.
///
/// To stay cheap when polled, ufw (a Python program) is only run when
/// iptables shows ufw's chains (the test ufw itself uses for "active"), and
/// firewall-cmd only when a `firewalld` process exists.
///
/// Problems (missing permission, a tool failing or timing out, no tool at
/// all) are listed in [`FwState::problems`]; reading the ruleset needs
/// `CAP_NET_ADMIN` (root).
pub fn collect() -> FwState {
    let mut st = FwState::default();
    let mut any_tool = false;
    let mut nft_ok = false;
    let mut firewalld_vote = false;
    let mut ufw_chains: Option<bool> = None;

    if let Some(nft) = find_tool("nft") {
        any_tool = true;
        match run_checked("nft", &nft, &["-j", "list", "ruleset"]) {
            Ok(out) => match assess_nft_json(&out) {
                Ok(a) => {
                    nft_ok = true;
                    push(&mut st, a);
                }
                Err(e) => st.problems.push(format!("nft: {e}")),
            },
            Err(e) => st.problems.push(e),
        }
    }

    for (tool, legacy, name) in [
        ("iptables-save", "iptables-legacy-save", "iptables"),
        ("ip6tables-save", "ip6tables-legacy-save", "ip6tables"),
    ] {
        let Some(path) = find_tool(tool) else { continue };
        any_tool = true;
        let out = match run_checked(tool, &path, &[]) {
            Ok(out) => out,
            Err(e) => {
                st.problems.push(e);
                continue;
            }
        };
        let mut sum = ipt_summary(&out);
        if name == "iptables" {
            ufw_chains = Some(sum.chains.contains("ufw-user-input"));
        }
        sum.assessment.profile.name = name.into();
        let legacy_present = sum.legacy_present;
        push(&mut st, sum.assessment);
        if legacy_present && let Some(path) = find_tool(legacy) {
            match run_checked(legacy, &path, &[]) {
                Ok(out) => {
                    let mut sum = ipt_summary(&out);
                    if name == "iptables" && sum.chains.contains("ufw-user-input") {
                        ufw_chains = Some(true);
                    }
                    sum.assessment.profile.name = format!("{name}-legacy");
                    push(&mut st, sum.assessment);
                }
                Err(e) => st.problems.push(e),
            }
        }
    }

    if let Some(ufw) = find_tool("ufw") {
        any_tool = true;
        if ufw_chains == Some(false) {
            // What `ufw status` would check; it would print "Status: inactive".
            push(&mut st, assess_ufw_status("Status: inactive"));
        } else {
            match run_checked("ufw", &ufw, &["status", "verbose"]) {
                Ok(out) if out.contains("Status:") => push(&mut st, assess_ufw_status(&out)),
                Ok(out) => st
                    .problems
                    .push(format!("ufw: unexpected output: {}", first_line(&out))),
                Err(e) => st.problems.push(e),
            }
        }
    }

    if let Some(fc) = find_tool("firewall-cmd") {
        any_tool = true;
        if process_running("firewalld") == Some(false) {
            push(&mut st, assess_firewalld_state("not running"));
        } else {
            // Exit status 252 means "not running"; the text says it either way.
            match run_tool(&fc, &["--state"], TOOL_TIMEOUT) {
                Ok(out) if matches!(out.stdout.trim(), "running" | "not running") => {
                    let a = assess_firewalld_state(&out.stdout);
                    firewalld_vote = a.filters_inbound;
                    st.profiles.push(a.profile);
                }
                Ok(out) => st.problems.push(describe_failure("firewall-cmd", &out)),
                Err(e) => st.problems.push(format!("firewall-cmd: {e}")),
            }
        }
    }

    if firewalld_vote && !nft_ok {
        st.inbound_filtering = true;
    }
    if !any_tool {
        st.problems.push(format!(
            "no firewall tool found (nft, iptables-save, ufw, firewall-cmd in {})",
            TOOL_DIRS.join(", ")
        ));
    }
    st
}

fn push(st: &mut FwState, a: Assessment) {
    st.inbound_filtering |= a.filters_inbound;
    st.profiles.push(a.profile);
}

/// The first of [`TOOL_DIRS`] holding an executable `name`.
fn find_tool(name: &str) -> Option<PathBuf> {
    TOOL_DIRS
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

/// Whether a process named `comm` runs (`None` if /proc cannot be read).
fn process_running(comm: &str) -> Option<bool> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(dir.flatten().any(|e| {
        e.file_name()
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            && std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == comm)
    }))
}

/// What a tool printed and how it ended.
#[derive(Debug)]
struct ToolOutput {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs a tool that must succeed; returns its standard output, or a problem
/// description naming the tool.
fn run_checked(name: &str, path: &Path, args: &[&str]) -> Result<String, String> {
    let out = run_tool(path, args, TOOL_TIMEOUT).map_err(|e| format!("{name}: {e}"))?;
    if out.status.success() {
        Ok(out.stdout)
    } else {
        Err(describe_failure(name, &out))
    }
}

fn describe_failure(name: &str, out: &ToolOutput) -> String {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let lower = text.to_lowercase();
    if [
        "permission denied",
        "operation not permitted",
        "must be root",
        "need to be root",
    ]
    .iter()
    .any(|m| lower.contains(m))
    {
        let need = if name == "ufw" { "root" } else { "CAP_NET_ADMIN" };
        return format!("{name}: permission denied (needs {need})");
    }
    let status = out.status.code().map_or_else(
        || "killed by a signal".to_string(),
        |c| format!("exit status {c}"),
    );
    format!("{name}: {status}: {}", first_line(text))
}

/// First non-empty line, shortened, for problem messages.
fn first_line(text: &str) -> String {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(no output)");
    let mut end = line.len().min(200);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    line[..end].to_string()
}

/// Runs `path args` with a clean environment, reading its output fully, and
/// kills it after `timeout`.
fn run_tool(path: &Path, args: &[&str], timeout: Duration) -> Result<ToolOutput, String> {
    let mut child = Command::new(path)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LC_ALL", "C")
        .env("LANG", "C")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", path.display()))?;
    // Read both pipes while waiting, so a large dump cannot fill a pipe and stall the tool.
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("waiting for it failed: {e}"));
            }
        }
    };
    // The pipes close when the tool exits (unless a child of it keeps them open).
    let grace = Duration::from_secs(1);
    let (stdout, truncated) = stdout.recv_timeout(grace).unwrap_or_default();
    let (stderr, _) = stderr.recv_timeout(grace).unwrap_or_default();
    if truncated {
        return Err(format!(
            "output larger than {} MiB",
            MAX_TOOL_OUTPUT / (1024 * 1024)
        ));
    }
    Ok(ToolOutput {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    })
}

/// Reads a pipe to the end on a thread: (up to `MAX_TOOL_OUTPUT` bytes, whether more came).
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<(Vec<u8>, bool)> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        // If the thread cannot start, the pipe is dropped and the tool sees EPIPE.
        let _ = std::thread::Builder::new()
            .name("fw-tool-output".into())
            .spawn(move || {
                let mut buf = Vec::new();
                let _ = (&mut pipe).take(MAX_TOOL_OUTPUT as u64 + 1).read_to_end(&mut buf);
                let truncated = buf.len() > MAX_TOOL_OUTPUT;
                if truncated {
                    buf.truncate(MAX_TOOL_OUTPUT);
                    let _ = std::io::copy(&mut pipe, &mut std::io::sink());
                }
                let _ = tx.send((buf, truncated));
            });
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real `nft -j list ruleset` outputs, nftables 1.0.6 (Debian 12), taken
    // in a private network namespace on this project's build machine.

    /// An empty or flushed ruleset.
    const NFT_EMPTY: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]}"#;

    /// Debian's stock /etc/nftables.conf: chains without rules, policy accept.
    const NFT_DEBIAN_DEFAULT: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 1}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "filter", "name": "output", "handle": 3, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}]}"#;

    /// A workstation ruleset: policy drop, established/ssh/icmp accepted, log.
    const NFT_POLICY_DROP: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 2}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "filter", "name": "output", "handle": 3, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 6, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 7, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "icmp"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 8, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "ipv6-icmp"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 9, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 10, "expr": [{"log": {"prefix": "nft-drop: "}}, {"counter": {"packets": 0, "bytes": 0}}]}}]}"#;

    /// What nft shows of a ufw-like iptables-nft ruleset (`IPT_UFW_LIKE`):
    /// policy drop, user chains, `xt` matches it cannot translate.
    const NFT_FROM_IPTABLES_NFT: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "ip", "name": "filter", "handle": 3}}, {"chain": {"family": "ip", "table": "filter", "name": "INPUT", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"chain": {"family": "ip", "table": "filter", "name": "FORWARD", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"chain": {"family": "ip", "table": "filter", "name": "OUTPUT", "handle": 3, "type": "filter", "hook": "output", "prio": 0, "policy": "accept"}}, {"chain": {"family": "ip", "table": "filter", "name": "ufw-before-input", "handle": 4}}, {"chain": {"family": "ip", "table": "filter", "name": "ufw-user-input", "handle": 5}}, {"chain": {"family": "ip", "table": "filter", "name": "ufw-logging-deny", "handle": 6}}, {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 7, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "ufw-before-input"}}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 8, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "ufw-user-input"}}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "INPUT", "handle": 9, "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"jump": {"target": "ufw-logging-deny"}}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "ufw-before-input", "handle": 10, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": "lo"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "ufw-before-input", "handle": 11, "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "ufw-before-input", "handle": 12, "expr": [{"xt": {"type": "match", "name": "conntrack"}}, {"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "ufw-before-input", "handle": 13, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}}, {"xt": {"type": "match", "name": "icmp"}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "ufw-user-input", "handle": 14, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"counter": {"packets": 0, "bytes": 0}}, {"accept": null}]}}, {"rule": {"family": "ip", "table": "filter", "chain": "ufw-logging-deny", "handle": 15, "expr": [{"limit": {"rate": 3, "burst": 10, "per": "minute"}}, {"counter": {"packets": 0, "bytes": 0}}, {"xt": {"type": "target", "name": "LOG"}}]}}]}"#;

    /// Policy accept; `ct state vmap { invalid : drop, … }`; a jump to a chain
    /// with `reject`; a netdev ingress chain with a drop.
    const NFT_VMAP_JUMP: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 8}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "filter", "name": "tcp_in", "handle": 2}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 4, "expr": [{"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["invalid", {"drop": null}], ["established", {"accept": null}], ["related", {"accept": null}]]}}}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 5, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "iif"}}, "right": "lo"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 6, "expr": [{"jump": {"target": "tcp_in"}}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "tcp_in", "handle": 7, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 23}}, {"reject": {"type": "tcp reset"}}]}}, {"table": {"family": "netdev", "name": "edge", "handle": 9}}, {"chain": {"family": "netdev", "table": "edge", "name": "ingress_eth", "handle": 1, "type": "filter", "hook": "ingress", "prio": -500, "policy": "accept"}}, {"rule": {"family": "netdev", "table": "edge", "chain": "ingress_eth", "handle": 2, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "198.51.100.0", "len": 24}}}}, {"drop": null}]}}]}"#;

    /// Policy accept with only `ct state invalid drop`.
    const NFT_INVALID_ONLY: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 10}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 2, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "invalid"}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "input", "handle": 3, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}]}"#;

    /// Drops only on forward and output, and in a chain nothing jumps to.
    const NFT_FORWARD_ONLY: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "filter", "handle": 11}}, {"chain": {"family": "inet", "table": "filter", "name": "input", "handle": 1, "type": "filter", "hook": "input", "prio": 0, "policy": "accept"}}, {"chain": {"family": "inet", "table": "filter", "name": "forward", "handle": 2, "type": "filter", "hook": "forward", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "filter", "name": "output", "handle": 3, "type": "filter", "hook": "output", "prio": 0, "policy": "drop"}}, {"chain": {"family": "inet", "table": "filter", "name": "unused", "handle": 4}}, {"rule": {"family": "inet", "table": "filter", "chain": "forward", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "192.0.2.0", "len": 24}}}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "filter", "chain": "unused", "handle": 6, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 22}}, {"drop": null}]}}]}"#;

    // Real `iptables-save` outputs (iptables 1.8.9, nf_tables backend), same
    // machine and namespace.

    /// The shape ufw gives the filter table: policy DROP, user chains.
    const IPT_UFW_LIKE: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables) on Fri Nov 27 08:03:26 2026
*filter
:INPUT DROP [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
:ufw-before-input - [0:0]
:ufw-logging-deny - [0:0]
:ufw-user-input - [0:0]
-A INPUT -j ufw-before-input
-A INPUT -j ufw-user-input
-A INPUT -j ufw-logging-deny
-A ufw-before-input -i lo -j ACCEPT
-A ufw-before-input -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A ufw-before-input -m conntrack --ctstate INVALID -j DROP
-A ufw-before-input -p icmp -m icmp --icmp-type 8 -j ACCEPT
-A ufw-logging-deny -m limit --limit 3/min --limit-burst 10 -j LOG --log-prefix "[UFW BLOCK] "
-A ufw-user-input -p tcp -m tcp --dport 22 -j ACCEPT
COMMIT
# Completed on Fri Nov 27 08:03:26 2026
"#;

    /// Policy ACCEPT; a REJECT in a jumped-to chain and a DROP in INPUT.
    const IPT_JUMP_REJECT: &str = r#"# Generated by iptables-save v1.8.9 (nf_tables) on Fri Nov 27 08:03:28 2026
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:blocklist - [0:0]
-A INPUT -j blocklist
-A INPUT -p tcp -m tcp --dport 23 -j DROP
-A blocklist -s 203.0.113.0/24 -j REJECT --reject-with icmp-port-unreachable
COMMIT
# Completed on Fri Nov 27 08:03:28 2026
"#;

    const IP6T_DROP: &str = r#"# Generated by ip6tables-save v1.8.9 (nf_tables) on Fri Nov 27 08:03:28 2026
*filter
:INPUT DROP [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -p ipv6-icmp -j ACCEPT
COMMIT
# Completed on Fri Nov 27 08:03:28 2026
"#;

    // `ufw status verbose`, as published:

    /// From a public dotfiles README (Debian workstation, via code search).
    const UFW_ACTIVE: &str = "Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
224.0.0.0/24               ALLOW IN    192.168.44.0/24
224.0.0.0/24               ALLOW IN    192.168.45.0/24
22/tcp (v6)                ALLOW IN    Anywhere (v6)
";

    /// https://linuxhint.com/ufw_status (blank-line layout as ufw prints it).
    const UFW_LINUXHINT: &str = "Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), deny (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
";

    /// A public internship README (via code search): explicit DENY rules.
    const UFW_DENY_RULES: &str = "Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere
80/tcp                     DENY IN     Anywhere
22/tcp (v6)                ALLOW IN    Anywhere (v6)
80/tcp (v6)                DENY IN     Anywhere (v6)
";

    #[test]
    fn nft_empty_ruleset_is_not_filtering() {
        let a = assess_nft_json(NFT_EMPTY).unwrap();
        assert_eq!(
            a.profile,
            FwProfile {
                name: "nftables".into(),
                enabled: false,
                default_inbound: None,
                default_outbound: None,
                rules: Some(0)
            }
        );
        assert!(!a.filters_inbound);
        assert_eq!(parse_nft_json(NFT_EMPTY).unwrap(), a.profile);
    }

    #[test]
    fn nft_accept_everything_is_enabled_but_not_filtering() {
        let a = assess_nft_json(NFT_DEBIAN_DEFAULT).unwrap();
        assert!(a.profile.enabled);
        assert_eq!(a.profile.default_inbound.as_deref(), Some("allow"));
        assert_eq!(a.profile.default_outbound.as_deref(), Some("allow"));
        assert_eq!(a.profile.rules, Some(0));
        assert!(!a.filters_inbound);
    }

    #[test]
    fn nft_policy_drop_filters() {
        let a = assess_nft_json(NFT_POLICY_DROP).unwrap();
        assert!(a.profile.enabled && a.filters_inbound);
        assert_eq!(a.profile.default_inbound.as_deref(), Some("block"));
        assert_eq!(a.profile.default_outbound.as_deref(), Some("allow"));
        assert_eq!(a.profile.rules, Some(7));
        let a = assess_nft_json(NFT_FROM_IPTABLES_NFT).unwrap();
        assert!(a.filters_inbound);
        assert_eq!(a.profile.default_inbound.as_deref(), Some("block"));
        assert_eq!(a.profile.rules, Some(9));
    }

    #[test]
    fn nft_drops_reached_by_jump_or_ingress_filter() {
        let a = assess_nft_json(NFT_VMAP_JUMP).unwrap();
        assert!(a.filters_inbound);
        assert_eq!(a.profile.default_inbound.as_deref(), Some("allow"));
        assert_eq!(a.profile.rules, Some(5));

        // Without the reject chain and the ingress drop, only the vmap's
        // `invalid : drop` is left, which does not count.
        let mut v: Value = serde_json::from_str(NFT_VMAP_JUMP).unwrap();
        let items = v["nftables"].as_array_mut().unwrap();
        items.retain(|i| {
            i.get("rule")
                .is_none_or(|r| r["chain"] == "input" && r["handle"] != 6)
        });
        let a = assess_nft_json(&v.to_string()).unwrap();
        assert!(!a.filters_inbound, "{v}");

        // Reject only in a chain reached through the jump.
        let mut v: Value = serde_json::from_str(NFT_VMAP_JUMP).unwrap();
        v["nftables"]
            .as_array_mut()
            .unwrap()
            .retain(|i| i.get("rule").is_none_or(|r| r["table"] != "edge"));
        assert!(assess_nft_json(&v.to_string()).unwrap().filters_inbound);
    }

    #[test]
    fn nft_invalid_only_forward_only_and_unreachable_do_not_count() {
        let a = assess_nft_json(NFT_INVALID_ONLY).unwrap();
        assert!(a.profile.enabled);
        assert!(!a.filters_inbound);
        let a = assess_nft_json(NFT_FORWARD_ONLY).unwrap();
        assert!(!a.filters_inbound);
        assert_eq!(a.profile.default_inbound.as_deref(), Some("allow"));
        assert_eq!(a.profile.default_outbound.as_deref(), Some("block"));
        assert_eq!(a.profile.rules, Some(2));
    }

    #[test]
    fn nft_bad_input_is_an_error() {
        for bad in ["", "not json", "[]", "{}", r#"{"nftables": 5}"#] {
            assert!(parse_nft_json(bad).is_err(), "{bad}");
        }
        // Odd but valid JSON does not panic.
        let odd = r#"{"nftables": [5, null, {"chain": 1}, {"rule": {"expr": 7}}, {"chain": {"hook": "input"}},
            {"rule": {"family": "", "table": "", "chain": "", "expr": [{"jump": {"target": ""}}, {"goto": 3}]}}]}"#;
        let a = assess_nft_json(odd).unwrap();
        assert!(a.profile.enabled);
        assert_eq!(a.profile.rules, Some(2));
        // Deep nesting stays within serde_json's recursion limit.
        let deep = format!(
            r#"{{"nftables": [{{"rule": {{"expr": {}1{}}}}}]}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert!(parse_nft_json(&deep).is_ok());
        let deeper = format!(r#"{{"nftables": [{}]}}"#, "[".repeat(10_000));
        assert!(parse_nft_json(&deeper).is_err());
    }

    #[test]
    fn iptables_ufw_like_ruleset() {
        let sum = ipt_summary(IPT_UFW_LIKE);
        let p = &sum.assessment.profile;
        assert_eq!(p.name, "iptables");
        assert!(p.enabled && sum.assessment.filters_inbound);
        assert_eq!(p.default_inbound.as_deref(), Some("block"));
        assert_eq!(p.default_outbound.as_deref(), Some("allow"));
        assert_eq!(p.rules, Some(9));
        assert!(sum.chains.contains("ufw-user-input"));
        assert!(!sum.legacy_present);
    }

    #[test]
    fn iptables_reject_in_jumped_chain() {
        let p = parse_iptables_save(IPT_JUMP_REJECT);
        assert!(p.enabled);
        assert_eq!(p.default_inbound.as_deref(), Some("allow"));
        assert_eq!(p.rules, Some(3));
        // Only the chain reached from INPUT.
        let only_chain = IPT_JUMP_REJECT
            .replace("-A INPUT -j blocklist\n", "")
            .replace("-A INPUT -p tcp", "-A FORWARD -p tcp");
        assert!(!parse_iptables_save(&only_chain).enabled);
        assert!(parse_iptables_save(IP6T_DROP).enabled);
    }

    #[test]
    fn iptables_empty_flushed_and_invalid_only() {
        let p = parse_iptables_save("");
        assert_eq!(
            p,
            FwProfile {
                name: "iptables".into(),
                enabled: false,
                default_inbound: None,
                default_outbound: None,
                rules: Some(0)
            }
        );
        let flushed = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        let p = parse_iptables_save(flushed);
        assert!(!p.enabled);
        assert_eq!(p.default_inbound.as_deref(), Some("allow"));
        let invalid = flushed.replace(
            "COMMIT",
            "-A INPUT -m conntrack --ctstate INVALID -j DROP\nCOMMIT",
        );
        assert!(!parse_iptables_save(&invalid).enabled);
        let not_invalid = flushed.replace(
            "COMMIT",
            "-A INPUT -m conntrack ! --ctstate INVALID -j DROP\nCOMMIT",
        );
        assert!(parse_iptables_save(&not_invalid).enabled);
        // Rules in other tables are not filter rules.
        let nat = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j DROP\nCOMMIT\n";
        assert_eq!(parse_iptables_save(nat).rules, Some(0));
        // A quoted comment mentioning -j DROP is not a target.
        let comment = flushed.replace(
            "COMMIT",
            "-A INPUT -m comment --comment \"say \\\"-j DROP\\\"\" -j ACCEPT\nCOMMIT",
        );
        assert!(!parse_iptables_save(&comment).enabled);
        // Jump loops terminate.
        let looped = "*filter\n:INPUT ACCEPT [0:0]\n:a - [0:0]\n:b - [0:0]\n-A INPUT -j a\n-A a -j b\n-A b -g a\nCOMMIT\n";
        assert!(!parse_iptables_save(looped).enabled);
        assert!(
            ipt_summary("# Warning: iptables-legacy tables present, use iptables-legacy-save to see them\n")
                .legacy_present
        );
    }

    #[test]
    fn split_args_handles_quotes() {
        assert_eq!(
            split_args(
                r#"ufw-logging-deny -j LOG --log-prefix "[UFW BLOCK] " -m comment --comment "a \"b\"""#
            ),
            [
                "ufw-logging-deny",
                "-j",
                "LOG",
                "--log-prefix",
                "[UFW BLOCK] ",
                "-m",
                "comment",
                "--comment",
                "a \"b\""
            ]
        );
        assert_eq!(split_args(r#"x "" y"#), ["x", "", "y"]);
        assert_eq!(split_args("  "), Vec::<String>::new());
    }

    #[test]
    fn ufw_status_outputs() {
        let a = assess_ufw_status(UFW_ACTIVE);
        assert_eq!(
            a.profile,
            FwProfile {
                name: "ufw".into(),
                enabled: true,
                default_inbound: Some("block".into()),
                default_outbound: Some("allow".into()),
                rules: Some(4)
            }
        );
        assert!(a.filters_inbound);
        assert_eq!(parse_ufw_status(UFW_LINUXHINT).rules, Some(2));

        let allow_default = UFW_DENY_RULES.replace("deny (incoming)", "allow (incoming)");
        let a = assess_ufw_status(&allow_default);
        assert_eq!(a.profile.default_inbound.as_deref(), Some("allow"));
        assert!(a.filters_inbound, "DENY IN rules filter");
        let out_only = allow_default.replace("DENY IN ", "DENY OUT");
        assert!(!assess_ufw_status(&out_only).filters_inbound);
        let reject = UFW_ACTIVE.replace("deny (incoming)", "reject (incoming)");
        assert_eq!(
            parse_ufw_status(&reject).default_inbound.as_deref(),
            Some("block")
        );

        let a = assess_ufw_status("Status: inactive\n");
        assert_eq!(
            a.profile,
            FwProfile {
                name: "ufw".into(),
                enabled: false,
                default_inbound: None,
                default_outbound: None,
                rules: None
            }
        );
        assert!(!a.filters_inbound);
        assert!(!assess_ufw_status("").profile.enabled);
        assert!(!assess_ufw_status("Status: activeX\nDefault: deny (incoming)").filters_inbound);
    }

    #[test]
    fn firewalld_state() {
        assert!(parse_firewalld_state("running\n").enabled);
        assert!(!parse_firewalld_state("not running\n").enabled);
        assert!(!parse_firewalld_state("").enabled);
        assert!(assess_firewalld_state("running").filters_inbound);
        assert_eq!(parse_firewalld_state("running").name, "firewalld");
    }

    #[test]
    fn failures_are_described() {
        #[cfg(unix)]
        let status = {
            use std::os::unix::process::ExitStatusExt;
            ExitStatus::from_raw(1 << 8)
        };
        #[cfg(not(unix))]
        let status = {
            use std::os::windows::process::ExitStatusExt;
            ExitStatus::from_raw(1)
        };
        let out = |stderr: &str| ToolOutput {
            status,
            stdout: String::new(),
            stderr: stderr.into(),
        };
        // Real messages of nft 1.0.6 and iptables 1.8.9 run as a normal user.
        assert_eq!(
            describe_failure(
                "nft",
                &out(
                    "Operation not permitted (you must be root)\nnetlink: Error: cache initialization failed: Operation not permitted\n"
                )
            ),
            "nft: permission denied (needs CAP_NET_ADMIN)"
        );
        assert_eq!(
            describe_failure(
                "iptables-save",
                &out(
                    "iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)\n"
                )
            ),
            "iptables-save: permission denied (needs CAP_NET_ADMIN)"
        );
        assert_eq!(
            describe_failure("ufw", &out("ERROR: You need to be root to run this script\n")),
            "ufw: permission denied (needs root)"
        );
        assert_eq!(
            describe_failure("nft", &out("\n\nError: boom\n")),
            "nft: exit status 1: Error: boom"
        );
        assert_eq!(
            describe_failure("nft", &out("")),
            "nft: exit status 1: (no output)"
        );
        assert!(first_line(&"é".repeat(300)).len() <= 200);
    }

    #[cfg(unix)]
    #[test]
    fn run_tool_captures_times_out_and_reads_large_output() {
        let sh = Path::new("/bin/sh");
        let out = run_tool(
            sh,
            &["-c", "echo out; echo err >&2; echo $LC_ALL; exit 3"],
            TOOL_TIMEOUT,
        )
        .unwrap();
        assert_eq!(out.stdout, "out\nC\n");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.status.code(), Some(3));
        // More than a pipe buffer holds must not stall the tool.
        let out = run_tool(sh, &["-c", "head -c 1000000 /dev/zero"], TOOL_TIMEOUT).unwrap();
        assert_eq!(out.stdout.len(), 1_000_000);
        let t = Instant::now();
        let e = run_tool(sh, &["-c", "sleep 30"], Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        assert!(t.elapsed() < Duration::from_secs(5));
        assert!(
            run_tool(Path::new("/nonexistent/tool"), &[], TOOL_TIMEOUT)
                .unwrap_err()
                .contains("cannot run")
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collect_runs_here() {
        let st = collect();
        eprintln!("{st:#?}");
        if st.profiles.is_empty() {
            assert!(!st.problems.is_empty(), "no profile and no problem: {st:?}");
        }
        // The verdict only ever comes from a profile.
        assert!(!st.inbound_filtering || !st.profiles.is_empty());
        assert!(process_running("this-process-does-not-exist").is_some_and(|r| !r));
    }
}
