#![no_main]
// The logic, and what it asserts, is in crates/fuzz-targets.
libfuzzer_sys::fuzz_target!(|data: &[u8]| banger_fuzz_targets::oci_layer(data));
