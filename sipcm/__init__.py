"""sipcm: passive SIP monitoring sensor (BPF capture, SIP correlation, ECS events)."""

__version__ = "0.1.0"
