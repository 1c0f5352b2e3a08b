"""The checksum-addressed object store: the only code in modelbox that imports fsspec.

Objects live at ``<root>/sha256/<2 hex>/<62 hex>`` in a local folder or any fsspec store
(docs/store.md). fsspec and s3fs are imported only when a remote store is opened, so that
importing this package stays cheap.
"""

from __future__ import annotations

from modelbox.objects.cache import HashCache, default_cache_dir
from modelbox.objects.hashing import FileDigest, hash_file
from modelbox.objects.store import ObjectStore, open_store

__all__ = [
    "FileDigest",
    "HashCache",
    "ObjectStore",
    "default_cache_dir",
    "hash_file",
    "open_store",
]
