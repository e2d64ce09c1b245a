#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "sysctls.txt",
    "netns/host/sysctls.txt",
    data
));
