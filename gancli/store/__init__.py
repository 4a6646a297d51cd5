"""Model folders on disk and on the Hub: config.json, safetensors, checksums, publishing."""
