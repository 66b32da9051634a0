"""SIP message framing over an in-order TCP byte stream (RFC 3261 section 18.3).

Input: the bytes of one TCP direction, in order, fed chunk by chunk. Output: complete SIP
messages (start line, headers, body of Content-Length bytes), each with a flag saying whether
its bytes came from more than one chunk. CRLF keep-alives (RFC 5626 section 4.4.1) are
counted and dropped; garbage is skipped up to the next start line at a line beginning.

Never raises on any input, never rescans bytes it already searched (linear time), never holds
more than about max_message_bytes of one unfinished message. It knows nothing of sequence
numbers: gaps and retransmissions are handled by `stream.TcpReassembler`.
"""

from __future__ import annotations

import re
from collections import Counter

# A request or status line longer than this is not one (real ones are well under 1 KiB).
MAX_START_LINE = 8192

_YES, _NO, _MAYBE = 1, 0, -1
_CR, _LF = 13, 10

_TOKEN = rb"A-Za-z0-9.!%*_+`'~\-"  # RFC 3261 section 25.1 token characters
# Request-Line = Method SP Request-URI SP SIP-Version CRLF (fullmatch on one line incl. LF).
_REQUEST = re.compile(rb"[" + _TOKEN + rb"]+ [^ \r\n]+ SIP/2\.0\r?\n", re.IGNORECASE)
# Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF; decided on its first 12 bytes.
_STATUS = re.compile(rb"SIP/2\.0 [1-6][0-9][0-9][ \r\n]", re.IGNORECASE)
# An unfinished last line that may still become a start line when more bytes arrive.
_SIPV_PREFIX = rb"(?:S(?:I(?:P(?:/(?:2(?:\.(?:0\r?)?)?)?)?)?)?)?"
_PARTIAL = re.compile(
    rb"[" + _TOKEN + rb"]*(?: [^ \r\n]*(?: " + _SIPV_PREFIX + rb")?)?"
    rb"|" + _SIPV_PREFIX + rb"|SIP/2\.0 [0-9]{0,3}",
    re.IGNORECASE,
)
# Content-Length or its compact form `l` (RFC 3261 sections 7.3.1, 20.14), at a line start.
_CONTENT_LENGTH = re.compile(rb"\n(?:content-length|l)[ \t]*:[ \t]*([^\r\n]*)", re.IGNORECASE)


def line_kind(buf: bytes | bytearray, pos: int, end: int) -> int:
    """Whether buf[pos:end] begins with a SIP start line: 1 yes, 0 no, -1 not known yet."""
    if _STATUS.match(buf, pos, end):
        return _YES
    lim = pos + MAX_START_LINE
    nl = buf.find(b"\n", pos, end if end < lim else lim)
    if nl >= 0:
        return _YES if _REQUEST.fullmatch(buf, pos, nl + 1) else _NO
    if end - pos >= MAX_START_LINE:
        return _NO
    return _MAYBE if _PARTIAL.fullmatch(buf, pos, end) else _NO


def _is_start_line(buf: bytes | bytearray, pos: int, nl: int) -> bool:
    """Whether the complete line buf[pos:nl+1] is a request or status line."""
    return bool(_STATUS.match(buf, pos, nl + 1) or _REQUEST.fullmatch(buf, pos, nl + 1))


def _keepalive_len(buf: bytes | bytearray, pos: int, end: int) -> int:
    """Length of a CRLFCRLF / CRLF / LF keep-alive at pos; 0 if undecided, -1 if none."""
    if buf.startswith(b"\r\n\r\n", pos):
        return 4
    if buf.startswith(b"\r\n", pos):
        return 2
    if buf[pos] == _LF:
        return 1
    return 0 if pos + 1 >= end else -1  # a lone CR at the end may be half a CRLF


class SipFramer:
    """Cuts one in-order TCP byte stream into SIP messages."""

    __slots__ = (
        "_buf",
        "_c",
        "_garbage_run",
        "_junk",
        "_max",
        "_msg_end",
        "_scan",
        "_skip",
        "_started",
    )

    def __init__(self, counters: Counter[str], max_message_bytes: int = 1 << 20) -> None:
        self._c = counters
        self._max = max_message_bytes
        self._buf = bytearray()  # unconsumed bytes; index 0 is the current message start
        self._started = False  # a start line was seen at buf[0]
        self._scan = 0  # where the search for the end of the header resumes
        self._msg_end = -1  # end offset of the current message once its header is parsed
        self._skip = 0  # bytes still to drop of a message too big to keep
        self._junk = False  # dropping bytes up to the next LF
        self._garbage_run = False  # inside garbage (tcp_resync counted once per run)

    def pending(self) -> int:
        """Bytes held for an unfinished message."""
        return len(self._buf)

    def drop(self) -> int:
        """Forget everything held (after a sequence gap); returns the bytes dropped."""
        n = len(self._buf)
        self._buf = bytearray()
        self._started = False
        self._msg_end = -1
        self._skip = 0
        self._junk = False
        self._garbage_run = False
        return n

    def feed(self, data: bytes) -> list[tuple[bytes, bool]]:
        """Add the next in-order bytes; return (message, spans_several_chunks) completed."""
        out: list[tuple[bytes, bool]] = []
        buf = self._buf
        if not buf:
            if self._skip >= len(data):  # the middle of a message being skipped
                self._skip -= len(data)
                return out
            pos = self._frame(data, 0, out)
            if pos < len(data):
                buf += data[pos:]
        else:
            seg_start = len(buf)
            buf += data
            pos = self._frame(buf, seg_start, out)
            if pos:
                del buf[:pos]  # O(1) from the front of a bytearray
        return out

    def _frame(self, work: bytes | bytearray, seg_start: int, out: list[tuple[bytes, bool]]) -> int:
        """Cut messages from work[0:]; returns how many bytes were consumed."""
        end = len(work)
        pos = 0
        c = self._c
        while pos < end:
            if self._skip:
                n = min(self._skip, end - pos)
                self._skip -= n
                pos += n
                continue
            if self._junk:
                nl = work.find(b"\n", pos)
                if nl < 0:
                    c["tcp_garbage_bytes"] += end - pos
                    pos = end
                    break
                c["tcp_garbage_bytes"] += nl + 1 - pos
                pos = nl + 1
                self._junk = False
                continue
            if not self._started:
                if not self._garbage_run and work[pos] in (_CR, _LF):
                    n = _keepalive_len(work, pos, end)
                    if n > 0:
                        c["tcp_keepalive"] += 1
                        pos += n
                        continue
                    if n == 0:
                        break
                kind = line_kind(work, pos, end)
                if kind == _MAYBE:
                    break
                if kind == _NO:
                    if not self._garbage_run:
                        c["tcp_resync"] += 1
                        self._garbage_run = True
                    self._junk = True
                    continue
                self._garbage_run = False
                self._started = True
                self._scan = pos
            if self._msg_end < 0:
                nxt = self._header(work, pos, end, seg_start, out)
                if nxt < 0:
                    break
                pos = nxt
                continue
            if end < self._msg_end:
                break
            out.append((bytes(work[pos : self._msg_end]), pos < seg_start))
            pos = self._msg_end
            self._started = False
            self._msg_end = -1
        if self._started and pos:
            self._scan -= pos
            if self._msg_end >= 0:
                self._msg_end -= pos
        return pos

    def _header(
        self,
        work: bytes | bytearray,
        pos: int,
        end: int,
        seg_start: int,
        out: list[tuple[bytes, bool]],
    ) -> int:
        """Find the end of the header of the message at pos and decide its length.

        Returns the position to continue from (pos itself once `_msg_end` is known), or -1
        when more bytes are needed.
        """
        scan = self._scan
        i = work.find(b"\r\n\r\n", scan)
        j = work.find(b"\n\n", scan, i + 2 if i >= 0 else end)  # tolerated bare LF LF
        if j >= 0:
            hdr_end = j + 2
        elif i >= 0:
            hdr_end = i + 4
        else:
            if end - pos > self._max:
                self._c["tcp_message_too_big"] += 1
                self._started = False
                self._junk = True  # the rest of this header is not a message start
                self._garbage_run = True
                return end
            self._scan = max(scan, end - 3)
            return -1
        c = self._c
        if hdr_end - pos > self._max:
            c["tcp_message_too_big"] += 1
            self._started = False
            return hdr_end  # a body, if any, is garbage up to the next start line
        m = _CONTENT_LENGTH.search(work, pos, hdr_end)
        if m is None:
            c["tcp_no_content_length"] += 1
            k = self._body_end(work, hdr_end, end)
            out.append((bytes(work[pos:k]), pos < seg_start))
            self._started = False
            return k
        value = m.group(1).strip()
        self._started = False
        if not value.isdigit() or len(value) > 10 or int(value) > self._max:
            c["tcp_bad_content_length"] += 1
            return hdr_end  # what follows is checked for a start line, else resync
        total = hdr_end - pos + int(value)
        if total > self._max:
            c["tcp_message_too_big"] += 1
            self._skip = total
            return pos
        self._started = True
        self._msg_end = hdr_end + int(value)
        return pos

    @staticmethod
    def _body_end(work: bytes | bytearray, k: int, end: int) -> int:
        """End of a body without Content-Length: the next start line among complete lines.

        An empty body if a start line, keep-alive or nothing follows; an unfinished last
        line is left for the next message (it may be its start line).
        """
        if k >= end or work[k] in (_CR, _LF):
            return k
        while k < end:
            nl = work.find(b"\n", k, end)
            if nl < 0 or _is_start_line(work, k, nl):
                break
            k = nl + 1
        return k
