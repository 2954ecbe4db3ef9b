"""Ingest: decode and validate channel events; accepted -> canonical topic, rest -> dead letters."""

from cdp.ingest.stage import Accepted, IngestStage

__all__ = ["Accepted", "IngestStage"]
