//! Nix's reports (`ops::nix`) as text: `nix status`, and what keeping Nix in step did
//! (`SyncReport`) as the notes and warnings the CLI prints.

use std::io::{Result, Write};

use crate::ops::facade::NixPaths as Paths;
use crate::ops::nix::{Daemon, NixStatus, SyncReport};

/// A line about what keeping Nix in step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// For the report's stream (stderr with `--json`; none with `-q`).
    Note(String),
    /// Always on stderr.
    Warning(String),
}

impl SyncReport {
    /// What this sync did or would do, in order; `paths`: Nix's configuration it changed.
    pub fn said(&self, paths: &Paths) -> Vec<Said> {
        let r = self;
        let mut said = Vec::new();
        if !r.would_add.is_empty() {
            said.push(Said::Note(format!(
                "would add {} to Nix's extra platforms in {}",
                r.would_add.join(" "),
                paths.include.display()
            )));
        }
        if !r.nameless.is_empty() {
            said.push(Said::Note(format!(
                "Nix has no system name for {} (docs/nix.md): Nix is not told about them",
                r.nameless.join(", ")
            )));
        }
        if !r.not_accepted.is_empty() {
            said.push(Said::Warning(format!(
                "Nix still does not accept {} after the change: a later `extra-platforms = ...` line in {} overrides it; move that line before the `!include binfmtctl.conf` line, or change it to `extra-extra-platforms = ...`",
                r.not_accepted.join(" "),
                paths.conf.display()
            )));
        }
        for p in &r.changed.wrote {
            said.push(Said::Note(format!("wrote {}", p.display())));
        }
        for p in &r.changed.removed {
            said.push(Said::Note(format!("removed {}", p.display())));
        }
        if let Some(platforms) = &r.platforms {
            said.push(Said::Note(if platforms.is_empty() {
                "Nix's extra platforms from binfmtctl: none".to_owned()
            } else {
                format!(
                    "Nix's extra platforms from binfmtctl: {}",
                    platforms.join(" ")
                )
            }));
        }
        match &r.daemon {
            None | Some(Daemon::NotRunning) => {}
            Some(Daemon::Restarted) => said.push(Said::Note(
                "restarted nix-daemon.service (systemctl try-restart) so it reads the new settings"
                    .into(),
            )),
            Some(Daemon::MustRestart(pids)) => said.push(Said::Warning(format!(
                "nix-daemon (pid {}) reads its settings only at start: restart it",
                pids.iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
        said
    }
}

impl NixStatus {
    /// Nix, binfmtctl's include file, Nix's settings, a table of the systems, the warnings.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let st = self;
        let ours = st.binfmtctl.platforms();
        writeln!(
            out,
            "nix: {} (configuration {})",
            st.nix.display(),
            st.conf_dir.display()
        )?;
        writeln!(
            out,
            "binfmtctl.conf: {}",
            match (st.include_exists, st.included) {
                (true, true) => format!(
                    "included, adds {}",
                    if ours.is_empty() {
                        "nothing".to_owned()
                    } else {
                        ours.join(" ")
                    }
                ),
                (true, false) => "present but NOT included".to_owned(),
                (false, _) => "not present (binfmtctl install ARCHES --nix writes it)".to_owned(),
            }
        )?;
        writeln!(out, "system: {}", st.system)?;
        writeln!(out, "extra-platforms: {}", st.extra_platforms.join(" "))?;
        writeln!(
            out,
            "sandbox: {}{}",
            st.sandbox,
            if st.sandbox_paths.is_empty() {
                String::new()
            } else {
                format!(" (paths: {})", st.sandbox_paths.join(" "))
            }
        )?;
        writeln!(
            out,
            "{:<20} {:<9} {:<10} {:<14} DETAIL",
            "SYSTEM", "NIX", "STATE", "HANDLER"
        )?;
        for r in &st.systems {
            let h = r.handler.as_ref();
            writeln!(
                out,
                "{:<20} {:<9} {:<10} {:<14} {}",
                r.system,
                if r.accepted { "builds" } else { "no" },
                h.map_or("unknown", |h| h.state.as_str()),
                h.and_then(|h| h.entry.clone())
                    .unwrap_or_else(|| "-".into()),
                h.map_or("", |h| h.detail.as_str())
            )?;
        }
        for w in &st.warnings {
            writeln!(out, "WARNING: {w}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Said;
    use crate::ops::facade::{NixChanged as Changed, NixPaths as Paths};
    use crate::ops::nix::{Daemon, SyncReport};

    /// Every line a sync can say, in the order it did the things, each a note or a warning.
    #[test]
    fn a_sync_says_what_it_did_in_order() {
        let paths = Paths::new("/n");
        let r = SyncReport {
            would_add: vec!["aarch64-linux".into()],
            nameless: vec!["or1k".into(), "hexagon".into()],
            not_accepted: vec!["riscv64-linux".into()],
            changed: Changed {
                wrote: vec![paths.include.clone()],
                removed: vec!["/n/old".into()],
            },
            platforms: Some(vec![]),
            daemon: Some(Daemon::MustRestart(vec![7, 9])),
            ..SyncReport::default()
        };
        let said = r.said(&paths);
        let include = paths.include.display();
        let conf = paths.conf.display();
        let note = |s: String| Said::Note(s);
        assert_eq!(
            said,
            [
                note(format!("would add aarch64-linux to Nix's extra platforms in {include}")),
                note("Nix has no system name for or1k, hexagon (docs/nix.md): Nix is not told about them".into()),
                Said::Warning(format!("Nix still does not accept riscv64-linux after the change: a later `extra-platforms = ...` line in {conf} overrides it; move that line before the `!include binfmtctl.conf` line, or change it to `extra-extra-platforms = ...`")),
                note(format!("wrote {include}")),
                note("removed /n/old".into()),
                note("Nix's extra platforms from binfmtctl: none".into()),
                Said::Warning("nix-daemon (pid 7, 9) reads its settings only at start: restart it".into()),
            ]
        );
        let restarted = SyncReport {
            daemon: Some(Daemon::Restarted),
            platforms: Some(vec!["aarch64-linux".into(), "riscv64-linux".into()]),
            ..SyncReport::default()
        };
        assert_eq!(
            restarted.said(&paths),
            [
                note("Nix's extra platforms from binfmtctl: aarch64-linux riscv64-linux".into()),
                note("restarted nix-daemon.service (systemctl try-restart) so it reads the new settings".into()),
            ]
        );
        assert!(SyncReport::default().said(&paths).is_empty());
    }
}
