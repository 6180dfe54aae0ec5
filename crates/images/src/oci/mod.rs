//! OCI image import (see docs/images.md).

pub mod apply;
mod pax;
pub mod spec;
