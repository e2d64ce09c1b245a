#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "/proc/net/sockstat",
    "netns/host/proc/net/sockstat",
    data
));
