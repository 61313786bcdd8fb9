"""The wire protocol: pure code, no I/O. Bytes and text in, typed events and JSON out."""
