"""A voxlive client for programs: ``async for msg in voxlive.client.stream(url, path): ...``.

The other end of the socket: it imports ``protocol/`` and ``audio/``, never ``server/``."""

from voxlive.client.replay import Backoff, ReplayBuffer
from voxlive.client.session import StreamOptions, stream
from voxlive.client.tally import Summary

__all__ = ["Backoff", "ReplayBuffer", "StreamOptions", "Summary", "stream"]
