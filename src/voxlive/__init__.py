"""voxlive: real-time audio classification over WebSockets, batched across streams."""

__version__ = "0.1.0"
