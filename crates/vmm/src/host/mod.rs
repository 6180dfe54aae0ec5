//! Host probing, shared by driver selection and `banger doctor`: each probe returns a rich,
//! explainable result rather than a bare boolean.

pub mod kvm;
pub mod tsc;
mod tsc_measure;
