#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "unix_diag.tsv",
    "netns/host/unix_diag.tsv",
    data
));
