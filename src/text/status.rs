//! `status`, `interpreters`, `import`'s listing and `arches` as text: the entries, what the
//! machine runs, warnings for entries that capture this host's own programs; each arch's
//! interpreter; the entries of binfmt.d files; the table's names.

use std::io::{Result, Write};

use super::column;
use crate::ops::facade::Table;
use crate::ops::import::{Listed, Listing};
use crate::ops::interpreters::InterpretersReport;
use crate::ops::status::StatusReport;

impl StatusReport {
    /// `status`: the instance, Nix's disagreements, the captures, the natives and the entries.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        let (mounted, enabled) = (self.binfmt_misc.mounted, self.binfmt_misc.enabled);
        if !mounted {
            writeln!(
                out,
                "binfmt_misc: not mounted at {} (binfmtctl install mounts it)",
                self.binfmt_misc.path.display()
            )?;
        } else {
            writeln!(
                out,
                "binfmt_misc: {} ({})",
                self.binfmt_misc.path.display(),
                if enabled {
                    "enabled"
                } else {
                    "DISABLED: no entry is used"
                }
            )?;
        }
        for w in &self.nix_warnings {
            writeln!(out, "WARNING: {w}")?;
        }
        for (s, e) in self.kernel.iter().zip(&self.entries) {
            let (k, Some(what)) = (&s.kernel, &s.captures) else {
                continue;
            };
            // Quoted for the shell when the name needs it (other tools' names may hold spaces).
            let arg = if k
                .name
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(b))
            {
                e.name.clone()
            } else {
                format!("'{}'", e.name.replace('\'', "'\\''"))
            };
            writeln!(
                out,
                "WARNING: entry {} ({}) matches {what}: native programs run through {}{}; remove it with `binfmtctl uninstall {arg}`",
                e.name,
                if e.enabled { "enabled" } else { "disabled" },
                e.interpreter,
                if e.enabled { "" } else { " once enabled" },
            )?;
        }
        let natives: Vec<String> = self.native.iter().map(|n| n.arch.clone()).collect();
        writeln!(out, "native: {}", natives.join(", "))?;
        writeln!(out, "supported: {}", self.supported.join(", "))?;
        if self.entries.is_empty() {
            writeln!(out, "no entries")?;
            return Ok(());
        }
        // Columns at least as wide as their longest cell (long names such as
        // qemu-microblaze-old keep the table aligned).
        let w_name = column(self.entries.iter().map(|e| e.name.chars().count()), 20);
        let w_arch = column(self.entries.iter().map(|e| e.arch.len()), 12);
        writeln!(
            out,
            "{:<w_name$} {:<8} {:<w_arch$} {:<5} {:<8} INTERPRETER",
            "ENTRY", "ENABLED", "ARCH", "FLAGS", "TABLE"
        )?;
        for e in &self.entries {
            let table = match e.matches_table {
                Some(true) => "matches",
                Some(false) => "DIFFERS",
                None => "-",
            };
            writeln!(
                out,
                "{:<w_name$} {:<8} {:<w_arch$} {:<5} {:<8} {} [{}]",
                e.name,
                if e.enabled { "yes" } else { "no" },
                e.arch,
                e.flags,
                table,
                e.interpreter,
                e.source.as_deref().unwrap_or("system")
            )?;
        }
        Ok(())
    }
}

impl InterpretersReport {
    /// A table: what really runs first (the registered entry's interpreter when there is one,
    /// labelled [system] or [store VERSION], else the one install would choose), with notes.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        // Columns as wide as their longest cell.
        let short = |v: Option<&str>| {
            v.and_then(|v| v.split_whitespace().next())
                .unwrap_or("?")
                .to_owned()
        };
        let mut rows: Vec<[String; 5]> = vec![[
            "ARCH".into(),
            "STATUS".into(),
            "INTERPRETER".into(),
            "VERSION".into(),
            "NOTES".into(),
        ]];
        for row in &self.interpreters {
            let chosen = match (&row.interpreter, &row.source) {
                (Some(p), Some(source)) => Some((
                    format!("{} [{source}]", p.display()),
                    short(row.version.as_deref()),
                )),
                _ => None,
            };
            let mut notes: Vec<String> = Vec::new();
            if row.native {
                notes.push("native on this host; never registered".into());
            }
            let (path, version) = match &row.registered {
                Some(reg) => {
                    let shown = (
                        format!("{} [{}]", reg.interpreter.display(), reg.source),
                        short(reg.version.as_deref()),
                    );
                    notes.push(format!(
                        "registered as {}{}",
                        reg.entry,
                        if reg.enabled { "" } else { " (disabled)" }
                    ));
                    match &chosen {
                        Some(c) if c.0 != shown.0 => {
                            notes.push(format!("install would take {} {}", c.0, c.1));
                        }
                        None if !row.refusal.is_empty() => {
                            notes.push(format!("install would refuse: {}", row.refusal));
                        }
                        _ => {}
                    }
                    shown
                }
                None => {
                    if !row.refusal.is_empty() {
                        notes.push(row.refusal.clone());
                    }
                    chosen.unwrap_or_else(|| ("-".into(), "-".into()))
                }
            };
            rows.push([
                row.arch.clone(),
                row.status.to_owned(),
                path,
                version,
                notes.join("; "),
            ]);
        }
        let width = |k: usize| column(rows.iter().map(|r| r[k].chars().count()), 0);
        let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
        for [a, st, path, version, notes] in &rows {
            writeln!(
                out,
                "{}",
                format!("{a:<w0$} {st:<w1$} {path:<w2$} {version:<w3$} {notes}").trim_end()
            )?;
        }
        Ok(())
    }
}

impl Listing {
    /// One line per entry: file:line, the entry, whether it matches our table.
    pub fn write_text(&self, out: &mut dyn Write) -> Result<()> {
        for Listed {
            entry: e,
            file,
            line,
        } in &self.registrations
        {
            let table = match e.matches_table {
                Some(true) => "matches our table",
                Some(false) => "DIFFERS from our table",
                None => "not ours",
            };
            writeln!(
                out,
                "{}:{line}: {} arch={} flags={} {} ({table}){}",
                file.display(),
                e.name,
                e.arch,
                e.flags,
                e.interpreter,
                if e.captures_native {
                    " WARNING: captures this host's own binaries"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// `arches`: each arch with every other name it answers to.
pub fn write_arches(table: &Table, out: &mut dyn Write) -> Result<()> {
    for a in &table.arches {
        let names = a.all_names();
        writeln!(out, "{:<13} {}", a.name, names[1..].join(" "))?;
    }
    Ok(())
}
