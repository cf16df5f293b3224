//! What this machine is: its native architecture (decided from the header of our own
//! executable, the best evidence there is of what the kernel runs natively), the compat
//! architectures its kernel runs without emulation (decided from the kernel config and command
//! line), and whether we run inside a user namespace.
//!
//! `HostFacts::gather` is the only I/O (reads `/proc/self/exe`, `/proc/config.gz` or
//! `/boot/config-<release>`, `/proc/cmdline`, `/proc/self/uid_map`); `HostFacts::native` is
//! pure, so tests feed it fabricated facts.

use std::io::Read;
use std::path::Path;

use serde::Serialize;

use crate::arch::{Arch, Table};
use crate::registration::BINPRM_BUF_SIZE;

/// Facts read from the running system.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    /// The first bytes of our own executable (what the kernel's matcher would see).
    pub exe_header: Vec<u8>,
    /// `uname -m`.
    pub machine: String,
    /// The kernel config text, when `/proc/config.gz` or `/boot/config-<release>` is readable.
    pub kernel_config: Option<String>,
    /// `/proc/cmdline`.
    pub cmdline: String,
    /// True when `/proc/self/uid_map` is not the identity map of the initial user namespace.
    pub in_user_namespace: bool,
    /// `/proc/sys/kernel/overflowuid`: how unmapped owners (e.g. host root) appear in a user
    /// namespace.
    pub overflow_uid: u32,
    /// Linux release (`uname -r`).
    pub kernel_release: String,
}

/// One arch the host runs without emulation, and why we believe it.
#[derive(Debug, Clone, Serialize)]
pub struct NativeArch {
    pub arch: String,
    pub evidence: String,
}

impl HostFacts {
    pub fn gather() -> HostFacts {
        let uname = rustix::system::uname();
        let release = uname.release().to_string_lossy().into_owned();
        let exe_header = std::fs::File::open("/proc/self/exe")
            .and_then(|f| {
                let mut b = Vec::with_capacity(BINPRM_BUF_SIZE);
                f.take(BINPRM_BUF_SIZE as u64).read_to_end(&mut b)?;
                Ok(b)
            })
            .unwrap_or_default();
        let kernel_config = read_gz("/proc/config.gz")
            .or_else(|| std::fs::read_to_string(format!("/boot/config-{release}")).ok());
        let uid_map = std::fs::read_to_string("/proc/self/uid_map").unwrap_or_default();
        HostFacts {
            exe_header,
            machine: uname.machine().to_string_lossy().into_owned(),
            kernel_config,
            cmdline: std::fs::read_to_string("/proc/cmdline").unwrap_or_default(),
            in_user_namespace: !is_identity_map(&uid_map),
            overflow_uid: std::fs::read_to_string("/proc/sys/kernel/overflowuid")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(65534),
            kernel_release: release,
        }
    }

    /// The host's own arch: the table entry whose pattern matches our executable; `uname -m`
    /// when none does (e.g. an unusual ELF header).
    pub fn host_arch<'t>(&self, table: &'t Table) -> Option<&'t Arch> {
        table
            .arch_of_header(&self.exe_header)
            .or_else(|| table.resolve(&self.machine).ok())
    }

    /// Every arch this host runs natively: its own, plus compat arches its kernel enables.
    /// Where the evidence is missing we count a compat arch as native: registering a handler
    /// for an arch the kernel runs itself would capture those binaries, which is worse than
    /// leaving a handler out.
    pub fn native(&self, table: &Table) -> Vec<NativeArch> {
        let Some(host) = self.host_arch(table) else {
            return Vec::new();
        };
        let mut out = vec![NativeArch {
            arch: host.name.clone(),
            evidence: format!(
                "the host's own executables are {} (uname -m: {})",
                host.name, self.machine
            ),
        }];
        let (compat_on, evidence) = self.compat_enabled(host);
        if compat_on {
            out.extend(host.compat.iter().map(|c| NativeArch {
                arch: c.clone(),
                evidence: evidence.clone(),
            }));
        }
        out
    }

    /// Is the compat layer of `host` on, and what tells us so.
    fn compat_enabled(&self, host: &Arch) -> (bool, String) {
        let Some(opt) = host.compat_config.as_deref() else {
            return (true, "assumed: no kernel option is known for it".into());
        };
        let Some(cfg) = &self.kernel_config else {
            return (
                true,
                format!("assumed: the kernel config is not readable, so {opt} may be on"),
            );
        };
        let set = |name: &str| cfg.lines().any(|l| l == format!("{name}=y"));
        if !set(opt) {
            return (false, format!("kernel built without {opt}"));
        }
        if opt == "CONFIG_IA32_EMULATION" {
            // Linux >= 6.7 can switch ia32 emulation at boot: ia32_emulation=<bool>.
            let arg = self
                .cmdline
                .split_whitespace()
                .find_map(|a| a.strip_prefix("ia32_emulation="));
            let default_off = set("CONFIG_IA32_EMULATION_DEFAULT_DISABLED");
            let on = match arg {
                Some(v) => matches!(v, "1" | "y" | "Y" | "on" | "true"),
                None => !default_off,
            };
            if !on {
                return (false, format!("{opt}=y but ia32 emulation is off at boot"));
            }
        }
        (true, format!("kernel config {opt}=y"))
    }
}

fn is_identity_map(uid_map: &str) -> bool {
    let f: Vec<&str> = uid_map.split_whitespace().collect();
    f == ["0", "0", "4294967295"]
}

fn read_gz(path: impl AsRef<Path>) -> Option<String> {
    let f = std::fs::File::open(path).ok()?;
    let mut s = String::new();
    flate2::read::GzDecoder::new(f)
        .read_to_string(&mut s)
        .ok()?;
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x86_64_facts(config: Option<&str>, cmdline: &str) -> HostFacts {
        let mut hdr = vec![0u8; 64];
        hdr[..8].copy_from_slice(b"\x7fELF\x02\x01\x01\x00");
        hdr[16] = 3;
        hdr[18] = 62;
        HostFacts {
            exe_header: hdr,
            machine: "x86_64".into(),
            kernel_config: config.map(str::to_owned),
            cmdline: cmdline.into(),
            ..Default::default()
        }
    }

    fn names(v: Vec<NativeArch>) -> Vec<String> {
        v.into_iter().map(|n| n.arch).collect()
    }

    #[test]
    fn x86_64_with_ia32() {
        let t = Table::builtin();
        let f = x86_64_facts(Some("CONFIG_X=y\nCONFIG_IA32_EMULATION=y\n"), "quiet");
        assert_eq!(names(f.native(t)), ["x86_64", "i386", "i486"]);
    }

    #[test]
    fn x86_64_without_ia32_or_disabled_at_boot() {
        let t = Table::builtin();
        let f = x86_64_facts(Some("# CONFIG_IA32_EMULATION is not set\n"), "");
        assert_eq!(names(f.native(t)), ["x86_64"]);
        let f = x86_64_facts(Some("CONFIG_IA32_EMULATION=y\n"), "ia32_emulation=false");
        assert_eq!(names(f.native(t)), ["x86_64"]);
        let cfg = "CONFIG_IA32_EMULATION=y\nCONFIG_IA32_EMULATION_DEFAULT_DISABLED=y\n";
        assert_eq!(names(x86_64_facts(Some(cfg), "").native(t)), ["x86_64"]);
        let on = x86_64_facts(Some(cfg), "ia32_emulation=1").native(t);
        assert_eq!(names(on), ["x86_64", "i386", "i486"]);
    }

    #[test]
    fn unknown_config_assumes_compat() {
        let t = Table::builtin();
        let n = x86_64_facts(None, "").native(t);
        assert_eq!(n[1].arch, "i386");
        assert!(n[1].evidence.starts_with("assumed"), "{}", n[1].evidence);
    }

    #[test]
    fn header_beats_uname() {
        let t = Table::builtin();
        let mut f = x86_64_facts(None, "");
        f.machine = "aarch64".into();
        assert_eq!(f.host_arch(t).unwrap().name, "x86_64");
        f.exe_header.clear();
        assert_eq!(f.host_arch(t).unwrap().name, "aarch64");
    }

    #[test]
    fn uid_map_identity() {
        assert!(is_identity_map("         0          0 4294967295\n"));
        assert!(!is_identity_map("         0       1000          1\n"));
    }
}
