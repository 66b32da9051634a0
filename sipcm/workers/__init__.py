"""Correlation worker processes (the `workers` key).

The main process captures, decodes and reassembles, then sends each payload to the worker
that owns its shard key (Call-ID; REGISTER: address-of-record), in chunks through shared
memory (`channel`). Each worker runs the same shard stage as the single-process pipeline
(`sipcm.compose.build_shard`) and returns encoded event rows; the main process merges them
into one order and publishes them through the one collector (rates, blacklist, outputs).
`pool` is the dispatcher's side, `worker` the process's main.
"""
