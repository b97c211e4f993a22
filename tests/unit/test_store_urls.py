"""Store URLs in logs and messages: the password never shows."""

from __future__ import annotations

import pytest

from roboframe.store.base import shown_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://trader:s3cret@db:5432/trading?schema=x",
         "postgresql://trader:***@db:5432/trading?schema=x"),
        ("mongodb://trader:p%40ss@h1:27017,h2:27017/rf?replicaSet=rs0",
         "mongodb://trader:***@h1:27017,h2:27017/rf?replicaSet=rs0"),
        ("postgresql://trader@db/trading", "postgresql://trader@db/trading"),
        ("mongodb://127.0.0.1:27017/rf", "mongodb://127.0.0.1:27017/rf"),
    ],
)  # fmt: skip
def test_the_password_is_replaced(url, shown):
    assert shown_url(url) == shown
