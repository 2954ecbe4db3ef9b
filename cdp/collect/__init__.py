"""The Segment-compatible HTTP collector: analytics SDKs in, cdp events on Kafka out.

* :mod:`cdp.collect.segment` -- Segment calls -> cdp events (pure functions);
* :mod:`cdp.collect.keys` -- write keys (hashed) and the source they send as;
* :mod:`cdp.collect.body`, :mod:`cdp.collect.auth` -- size limits, JSON, write keys;
* :mod:`cdp.collect.sink` -- delivery to Kafka, acknowledged per request;
* :mod:`cdp.collect.app` -- the FastAPI app (``cdp collector`` serves it).

Reference: ``docs/collector.md``.
"""
