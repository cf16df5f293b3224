//! `rootfs create`'s lines (`ops::emulate::Bootstrap`): what is created before the bootstrap
//! runs, and what was once it is done.

use std::io::{Result, Write};

use crate::ops::emulate::{Bootstrap, RootfsRequest};

impl Bootstrap {
    /// Before the bootstrap: the suite, variant, arch, directory and tool.
    pub fn write_start(&self, req: &RootfsRequest, out: &mut dyn Write) -> Result<()> {
        writeln!(
            out,
            "creating a {} {} rootfs for {} in {} with {}{}",
            req.suite,
            req.variant,
            self.arch,
            self.target.display(),
            self.tool,
            if self.private {
                " (emulated in a private binfmt_misc instance)"
            } else {
                ""
            }
        )
    }

    /// After it: the directory created.
    pub fn write_done(&self, req: &RootfsRequest, out: &mut dyn Write) -> Result<()> {
        let (target, arch) = (self.target.display(), &self.arch);
        writeln!(out, "created {target} ({arch} {})", req.suite)
    }
}
