"""Building blocks of event anonymization (SPEC section 9).

- `keys`: the 128-bit key from a passphrase + salt, a hex key or a key file; sub-keys; check value.
- `ipcipher`: ipcipher (ipcrypt for IPv4, one AES block for IPv6), as published by PowerDNS.
- `prefix`: prefix-preserving IPv4 encryption (Crypto-PAn construction with AES).
- `text`: deterministic AES-SIV encryption of text into lowercase base32 tokens.
- `uri`: splitting a URI into scheme / user / host / port / rest, so parts encrypt separately.
- `codec`: the value-level encrypt/decrypt functions (ip, host, user, uri, call_id, ua, display).

`sipcm.events.anonymize` applies them to event documents. Nothing here logs or formats a key.
"""
