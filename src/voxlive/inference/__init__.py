"""Models behind one small interface: load, warm up, classify a batch of equal-length windows."""
