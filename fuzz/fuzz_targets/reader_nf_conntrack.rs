#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "/proc/net/nf_conntrack",
    "netns/host/proc/net/nf_conntrack",
    data
));
