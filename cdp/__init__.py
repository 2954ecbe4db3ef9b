"""cdp: an event-streaming customer-data platform (Kafka + Faust + Redis).

Data flow: ingest -> identity -> profile -> journey -> serve.
"""

__version__ = "0.1.0"
