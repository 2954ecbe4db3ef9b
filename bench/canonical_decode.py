"""Reading a canonical record in two stages: decoded twice, against decoded once and shared.

No stack needed::

    .venv/bin/python -m bench.canonical_decode

The worker's facts stage and its event processors read every canonical record. This
times, per record over generated events, what the two readers pay: the raw baseline
decodes and validates the record twice (``decode_canonical``, as both stages did
before), the shared path asks :class:`~cdp.contracts.decode_once.DecodeOnce` twice and
makes the processor's copy (``private_copy``).
"""

from __future__ import annotations

import argparse
import time

from cdp.contracts.codec import AvroCodec
from cdp.contracts.decode_once import DecodeOnce
from cdp.contracts.events import decode_canonical, encode_canonical, private_copy
from cdp.contracts.registry import registry_from_settings
from cdp.samples import generate
from cdp.settings import load_settings


def main() -> None:
    """Command line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=300, help="generated customers")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    codec = AvroCodec(registry_from_settings(load_settings()))
    dataset = generate(args.customers, 10, seed=1)
    records = [encode_canonical(codec, event) for event in dataset.events]
    count = len(records)
    print(f"{count:,} canonical records, {sum(map(len, records)) / count:.0f} bytes each")
    for round_ in range(1, args.rounds + 1):
        started = time.perf_counter()
        for value in records:
            decode_canonical(codec, value)
            decode_canonical(codec, value)
        twice = (time.perf_counter() - started) / count
        shared = DecodeOnce(codec, readers=2)
        started = time.perf_counter()
        for offset, value in enumerate(records):
            shared.event(("canonical", 0, offset), value)
            private_copy(shared.event(("canonical", 0, offset), value))
        once = (time.perf_counter() - started) / count
        print(
            f"round {round_}: decoded twice {twice * 1e6:.1f} µs/record (raw baseline),"
            f" decoded once and shared {once * 1e6:.1f} µs/record ({once / twice:.0%})"
        )


if __name__ == "__main__":
    main()
