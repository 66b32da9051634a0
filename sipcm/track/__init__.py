"""Correlation: SipMessages to Outcomes (outcome.py is the hand-off to `events/`).

Follows transactions, dialogs and registrations on the capture-time clock; never touches bytes
and never builds documents.
"""
