"""Kezhan: customer data platform for Chinese marketplace sellers."""

import os

# polars allocates through its own jemalloc, which by default keeps freed pages until its next
# allocation: after parsing a 1,000,000-order export about 0.5 GB of freed frames stayed resident
# through the whole load. Returning them at once and from a background thread keeps a large
# import under its memory budget at no measured cost in time (docs/benchmarks.md). polars reads
# this when it is first imported, which is always after this package.
os.environ.setdefault(
    "_RJEM_MALLOC_CONF", "background_thread:true,dirty_decay_ms:0,muzzy_decay_ms:0"
)
