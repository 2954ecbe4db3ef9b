"""Errors of the platform and the machine-readable reason codes of dead letters."""

from __future__ import annotations

from enum import StrEnum


class CdpError(Exception):
    """Base class of every error the platform raises on purpose."""


class ConfigError(CdpError):
    """A setting is missing or invalid; the message names the setting."""


class StackError(CdpError):
    """The local stack (Kafka broker, Redis) could not be installed, started or stopped."""


class ReasonCode(StrEnum):
    """Why a record went to the dead-letter topic (header ``cdp.reason``)."""

    NOT_WIRE_FORMAT = "not_wire_format"
    """Too short or wrong magic byte: not Confluent wire format."""
    UNKNOWN_SCHEMA_ID = "unknown_schema_id"
    """The 4-byte schema id is not registered."""
    AVRO_DECODE_ERROR = "avro_decode_error"
    """The payload is not valid Avro for the schema its id names."""
    WRONG_CHANNEL = "wrong_channel"
    """The schema belongs to another channel than the topic it arrived on."""
    VALIDATION_FAILED = "validation_failed"
    """Decoded, but the event breaks the contract (bad field value, unknown type, ...)."""
    MISSING_IDENTIFIERS = "missing_identifiers"
    """The event names no usable identifier of the person it is about."""
    NO_USABLE_IDENTIFIER = "no_usable_identifier"
    """Every identifier is invalid after normalisation or blocked (a shared number, ...)."""
    PROCESSOR_ERROR = "processor_error"
    """A stream processor raised while handling the record."""


class EventError(CdpError):
    """An incoming record cannot be accepted; carries the dead-letter reason.

    ``detail`` must never contain PII: it names fields and rules, not values.
    """

    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
