#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| capsnap_fuzz::reader(
    "nft -j list ruleset",
    "netns/host/nft-ruleset.json",
    data
));
