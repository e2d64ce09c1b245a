#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "/proc/net/snmp, /proc/net/netstat",
    "netns/host/proc/net/snmp",
    data
));
