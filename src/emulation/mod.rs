//! Running foreign code: the sandbox (namespaces, mounts, chroot), rootfs sources and
//! the cross-compilation environment.

pub mod accelerate;
pub mod cross;
pub mod rootfs;
pub mod sandbox;
