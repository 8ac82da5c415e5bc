#![no_main]
// The property lives in the library (rev23_webhooks::fuzzing::destination) so tests/fuzz_seeds.rs runs it too.
libfuzzer_sys::fuzz_target!(|data: &[u8]| rev23_webhooks::fuzzing::destination(data));
