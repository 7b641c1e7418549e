"""Search: how text is matched against conversations and messages."""

from convstore.search.substring import fold, text_matches

__all__ = ["fold", "text_matches"]
