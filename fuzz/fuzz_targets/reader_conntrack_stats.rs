#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "conntrack-stats.txt",
    "netns/host/conntrack-stats.txt",
    data
));
