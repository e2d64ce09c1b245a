#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader("dmesg.txt", "dmesg.txt", data));
