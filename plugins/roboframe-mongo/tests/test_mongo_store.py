"""The MongoDB order store through real pymongo against SecantusDB (change streams)."""

from __future__ import annotations

import pytest
from roboframe_mongo.store import MongoStore

from roboframe.store import StoreUnavailable, open_store


def test_scheme_selects_the_backend(mongo_url):
    store = open_store(mongo_url)
    assert isinstance(store, MongoStore)
    store.close()


def test_unreachable_server_is_store_unavailable():
    with pytest.raises(StoreUnavailable):
        MongoStore("mongodb://127.0.0.1:1/x?directConnection=true&serverSelectionTimeoutMS=300")
