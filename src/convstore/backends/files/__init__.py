"""The JSON-files backend (``file://PATH``): human-readable files, locks, journals, an index."""
