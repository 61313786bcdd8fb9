"""Pure numpy signal handling: ring buffer, resampling, gates, smoothing, file decoding."""
