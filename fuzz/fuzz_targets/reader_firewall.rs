#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "iptables-save -c",
    "netns/host/iptables-save.txt",
    data
));
