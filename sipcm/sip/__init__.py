"""SIP parsing: Payload bytes to SipMessage or ParseError (message.py is the hand-off).

`parser.parse(data)` is total and linear: any bytes give a `SipMessage` or a `ParseError` with
a reason and an offset, never an exception. It knows nothing of dialogs, timers or events.
"""
