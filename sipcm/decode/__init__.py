"""Decoding: frames (RecordBatch) to SIP candidate payloads (Payload).

Input: `RecordBatch` from `capture/`. Output: `Payload` (packet.py), one per UDP datagram or
framed TCP message whose ports or first line make it a SIP candidate, after IP fragment and
TCP stream reassembly. Never raises on malformed input: every rejection is a named counter.
"""
