"""Streams of windows and the batcher that feeds them to the model. No sockets here."""
