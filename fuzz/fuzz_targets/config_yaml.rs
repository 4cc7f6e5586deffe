//! Fuzzes the network YAML loader: any text must load or give an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = kann_config::NetworkConfig::from_yaml_str(text, std::path::Path::new("/nonexistent/network.yaml"));
    }
});
