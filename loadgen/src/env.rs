//! The machine a run happened on, recorded in summary.json so runs on different hardware
//! can be compared: commit, kernel, CPU model and count, memory.
//!
//! Every field is best effort: missing sources (not Linux, not a git checkout) give
//! `None`, never an error. The only command run is `git rev-parse HEAD` (read only).

use serde::Serialize;

#[derive(Clone, Debug, Default, Serialize)]
pub struct Environment {
    pub git_commit: Option<String>,
    pub os: String,
    pub kernel: Option<String>,
    pub cpu_model: Option<String>,
    pub cpus: usize,
    pub memory_kib: Option<u64>,
}

impl Environment {
    pub fn detect() -> Environment {
        Environment {
            git_commit: git_commit(),
            os: std::env::consts::OS.to_string(),
            kernel: read_trimmed("/proc/sys/kernel/osrelease"),
            cpu_model: std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|t| cpu_model(&t)),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_kib: std::fs::read_to_string("/proc/meminfo")
                .ok()
                .and_then(|t| mem_total_kib(&t)),
        }
    }
}

/// Resident set size of this process (user-space memory actually in RAM), in KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn read_trimmed(path: &str) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// The commit of the checkout we run in, else of the one our executable was built in
/// (`target/<profile>/` lies inside it).
fn git_commit() -> Option<String> {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.to_path_buf()));
    let dirs = [Some(std::path::PathBuf::from(".")), exe_dir];
    dirs.into_iter().flatten().find_map(|dir| {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&dir)
            .args(["rev-parse", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let commit = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !commit.is_empty()).then_some(commit)
    })
}

/// The first `model name` line (x86), else `Model`/`Hardware` (ARM boards).
fn cpu_model(cpuinfo: &str) -> Option<String> {
    ["model name", "Model", "Hardware"].iter().find_map(|key| {
        cpuinfo.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            (k.trim() == *key).then(|| v.trim().to_string())
        })
    })
}

fn mem_total_kib(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(
            cpu_model("processor : 0\nModel : Raspberry Pi 4\n").as_deref(),
            Some("Raspberry Pi 4")
        );
        assert_eq!(cpu_model(""), None);
        assert_eq!(
            mem_total_kib("MemTotal:       24589996 kB\nMemFree: 1 kB\n"),
            Some(24_589_996)
        );
        let env = Environment::detect();
        assert!(env.cpus >= 1);
        if cfg!(target_os = "linux") {
            assert!(rss_kib().is_some_and(|kib| kib > 0));
        }
    }
}
