//! Records, the kernel seam and planning: the arch table, binfmt_misc records, the one
//! writer of binfmt_misc (`kernel`), the planner with apply/rollback (and the
//! termination signals it turns into a rollback), and binfmt.d interop.

pub mod arch;
pub mod interop;
pub mod kernel;
pub mod plan;
pub mod registration;
pub mod signals;
