#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "netlink/conntrack.nl",
    "netns/host/netlink/conntrack.nl",
    data
));
