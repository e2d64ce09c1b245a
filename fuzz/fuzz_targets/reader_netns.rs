#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "manifest.json namespaces",
    "manifest.json",
    data
));
