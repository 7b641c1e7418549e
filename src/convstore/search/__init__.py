"""Search: the query language, text folding, ranking and snippets."""

from convstore.search.query import SearchQuery, parse_query
from convstore.search.results import SearchHit, SearchResults
from convstore.search.snippets import Snippet

__all__ = ["SearchHit", "SearchQuery", "SearchResults", "Snippet", "parse_query"]
