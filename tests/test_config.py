"""ConversationManagerConfig: seed defaults, checks, from_dict and the environment."""

from __future__ import annotations

import pytest

import convstore
from convstore import ConfigurationError, ConversationManagerConfig, InvalidInputError
from convstore.config import DEFAULT_URL, resolve_url


def test_seed_defaults() -> None:
    config = ConversationManagerConfig()
    assert (config.max_cache_size, config.cache_ttl, config.lock_timeout) == (100, 300.0, 10.0)
    assert (config.backup_enabled, config.backup_interval, config.max_backups) == (True, 3600.0, 10)
    assert (config.enable_compression, config.log_level) == (False, "INFO")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lock_timeout": -1}, "lock_timeout must not be negative"),
        ({"cache_ttl": -0.5}, "cache_ttl must not be negative"),
        ({"max_cache_size": -1}, "max_cache_size"),
        ({"backup_interval": 0}, "backup_interval must be positive"),
        ({"max_message_size": 0}, "max_message_size must be positive"),
        ({"lock_timeout": "10"}, "lock_timeout must be of type float"),
        ({"max_cache_size": 1.5}, "max_cache_size must be of type int"),
        ({"backup_enabled": "yes"}, "backup_enabled must be of type bool"),
        ({"max_backups": True}, "max_backups must be of type int"),
        ({"log_level": "LOUD"}, "log_level must be one of"),
        ({"durability": "maybe"}, "durability must be one of"),
        ({"url": "memory://", "storage_path": "/tmp/x"}, "either url or storage_path"),
        ({"lock_timeout": float("nan")}, "lock_timeout must be a finite number"),
    ],
)
def test_invalid_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as raised:
        ConversationManagerConfig(**settings)  # type: ignore[arg-type]
    assert isinstance(raised.value, InvalidInputError)
    assert raised.value.code == "INVALID_CONFIG"


def test_from_dict() -> None:
    config = ConversationManagerConfig.from_dict({"max_cache_size": 200, "lock_timeout": 2})
    assert (config.max_cache_size, config.lock_timeout) == (200, 2)
    with pytest.raises(ConfigurationError, match="unknown configuration keys: colour"):
        ConversationManagerConfig.from_dict({"colour": "red"})
    assert ConversationManagerConfig.from_dict(config.to_dict()) == config


def test_from_env() -> None:
    env = {
        "CONVSTORE_LOCK_TIMEOUT": "2.5",
        "CONVSTORE_MAX_CACHE_SIZE": "7",
        "CONVSTORE_BACKUP_ENABLED": "false",
        "CONVSTORE_LOG_LEVEL": "DEBUG",
        "CONVSTORE_URL": "memory://",
    }
    config = ConversationManagerConfig.from_env(env, cache_ttl=1.0)
    assert (config.lock_timeout, config.max_cache_size, config.backup_enabled) == (2.5, 7, False)
    assert (config.log_level, config.cache_ttl, config.url) == ("DEBUG", 1.0, "memory://")
    assert (
        ConversationManagerConfig.from_env({"CONVSTORE_BACKUP_ENABLED": "on"}).backup_enabled
        is True
    )
    with pytest.raises(ConfigurationError, match=r"\$CONVSTORE_LOCK_TIMEOUT='soon'"):
        ConversationManagerConfig.from_env({"CONVSTORE_LOCK_TIMEOUT": "soon"})
    with pytest.raises(ConfigurationError, match="CONVSTORE_BACKUP_ENABLED"):
        ConversationManagerConfig.from_env({"CONVSTORE_BACKUP_ENABLED": "perhaps"})
    with pytest.raises(ConfigurationError, match="lock_timeout must not be negative"):
        ConversationManagerConfig.from_env({"CONVSTORE_LOCK_TIMEOUT": "-3"})


def test_url_resolution() -> None:
    assert resolve_url("memory://", {"CONVSTORE_URL": "sqlite:///a.db"}) == "memory://"
    assert (
        resolve_url(None, {"CONVSTORE_URL": "sqlite:///a.db", "DATABASE_URL": "sqlite:///b.db"})
        == "sqlite:///a.db"
    )
    assert resolve_url(None, {"DATABASE_URL": "sqlite:///b.db"}) == "sqlite:///b.db"
    assert resolve_url(None, {}) == DEFAULT_URL
    assert ConversationManagerConfig(storage_path="/data/chats").store_url == "file:///data/chats"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("oracle://db", "scheme 'oracle' is not supported"),
        ("no-scheme", "is not a URL"),
        ("sqlite:///", "names no database file"),
        ("file://", "names no directory"),
    ],
)
def test_unsupported_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        convstore.open(url)


def test_open_with_config_and_overrides(tmp_path: object) -> None:
    config = ConversationManagerConfig(lock_timeout=1.0)
    with convstore.open("memory://", config=config, max_cache_size=0) as store:
        assert store.config.lock_timeout == 1.0
        assert store.config.max_cache_size == 0
        assert store.url == "memory://"
