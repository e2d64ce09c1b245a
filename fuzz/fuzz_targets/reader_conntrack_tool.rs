#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "conntrack -L",
    "netns/host/conntrack.txt",
    data
));
