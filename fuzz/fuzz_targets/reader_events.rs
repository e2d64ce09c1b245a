#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "ebpf/events.jsonl",
    "ebpf/events.jsonl",
    data
));
