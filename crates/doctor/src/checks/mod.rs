//! The built-in checks, one module per concern.

pub mod agent;
pub mod arch;
pub mod config;
pub mod driver;
pub mod firecracker;
pub mod image_recipes;
pub mod install_hint;
pub mod kvm;
pub mod lifecycle;
pub mod network;
pub mod runtime;
pub mod security;
pub mod shares;
pub mod ssh;
pub mod store;
pub mod vm_defaults;
pub mod vm_disks;
