"""Capture sources: the live BPF ring and pcap/pcapng files.

Both yield `RecordBatch`es (records.py): raw frames with timestamps, lengths and link type,
never per-packet Python objects. Only `program.py` imports BCC, so replay never loads it.
"""
