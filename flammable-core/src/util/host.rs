//! This machine's name, as runs record it: a process id means something only on the host
//! that recorded it, so whatever signals a run's process checks the run's host first.

/// The host name (the kernel's, else `$HOSTNAME`); empty when neither is known.
pub fn name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// True when `recorded` names this host (case and a final dot aside, as DNS names compare).
pub fn is_this_host(recorded: &str) -> bool {
    let norm = |s: &str| s.trim().trim_end_matches('.').to_ascii_lowercase();
    let here = norm(&name());
    !here.is_empty() && norm(recorded) == here
}

/// `user@host` of this process: `$USER`, else `$LOGNAME`, else the account's name (`id -un`,
/// for a shell without them: a container, cron), else `unknown`.
pub fn user_at_host() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| {
            std::process::Command::new("id")
                .arg("-un")
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
                .filter(|u| !u.is_empty())
        })
        .unwrap_or_else(|| "unknown".into());
    format!("{user}@{}", name())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_host_is_this_host_and_no_other() {
        let here = name();
        assert!(!here.is_empty());
        assert!(is_this_host(&here));
        assert!(is_this_host(&format!("{}.", here.to_uppercase())));
        assert!(!is_this_host(&format!("{here}-elsewhere")));
        assert!(!is_this_host(""));
    }
}
