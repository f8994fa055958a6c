"""Import shim: the sentiment models logged by earlier runs carry a copy of
registry/sentiment_model.py that asks `portrait.encoder` for the forward pass's
precision. The code lives in portrait.text.encoder; nothing of Portrait's imports this."""

from portrait.text.encoder import resolve_precision

__all__ = ["resolve_precision"]
