/// RequestParser: a pure, resumable HTTP/1.1 request parser (RFC 9112). Bytes in, events
/// out; no I/O, no clock, no allocation beyond the head's strings.
///
/// The caller keeps unconsumed bytes and calls again with more appended. The head is parsed
/// once it is complete (like picohttpparser), but scanning for its end resumes where the
/// last call stopped, so a head trickling in byte by byte costs O(n), and the head limit is
/// enforced as soon as that many bytes are seen (431) — never unbounded buffering. Bodies are
/// streamed out as ranges of the caller's buffer as they arrive.
///
/// Smuggling defences (RFC 9112 §6.1, §6.3, §11.2): bare CR or LF → 400; obs-fold → 400;
/// whitespace before the colon → 400; Content-Length with Transfer-Encoding → 400; repeated
/// or list-valued Content-Length → 400 (even when equal: strict); Transfer-Encoding in
/// HTTP/1.0 → 400; final coding not `chunked` → 400, other codings before it → 501;
/// malformed chunk sizes, over-long chunk lines, missing CRLF after chunk data → 400;
/// a missing or repeated Host in HTTP/1.1 → 400 (RFC 9112 §3.2).
/// Known limitation: header values with obs-text (bytes ≥ 0x80) are decoded as UTF-8 with
/// replacement characters, not as Latin-1.
public struct RequestParser: Sendable {
    enum State: Sendable, Equatable {
        case head
        case body(remaining: Int)
        case chunkSize
        case chunkData(remaining: Int)
        case chunkDataCRLF
        case trailers(bytes: Int)
        case endPending
        case failed(ParseError)
    }

    /// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
    static let maxLeadingEmptyLines = 8
    /// Bound on a chunk-size line with extensions (nginx and Node use similar small bounds).
    static let maxChunkLineBytes = 1024
    /// At most 15 hex digits: the value fits an Int with room for the running total.
    static let maxChunkSizeDigits = 15
    static let maxContentLengthDigits = 18

    public let limits: HTTPLimits
    var state: State = .head
    /// Head state: bytes of the current buffer already scanned for the end of the head.
    var scanned = 0
    var bodyTotal = 0

    public init(limits: HTTPLimits) {
        self.limits = limits
    }

    public mutating func parse(_ input: [UInt8]) -> (consumed: Int, event: ParseEvent) {
        input.withUnsafeBytes { parse($0) }
    }

    public mutating func parse(_ input: UnsafeRawBufferPointer) -> (consumed: Int, event: ParseEvent) {
        let n = input.count
        var off = 0
        while true {
            switch state {
            case .failed(let e):
                return (0, .error(e))
            case .endPending:
                state = .head
                scanned = 0
                bodyTotal = 0
                return (off, .end)
            case .head:
                return parseHead(input)
            case .body(let remaining):
                let take = min(remaining, n - off)
                if take == 0 { return (off, .needMore) }
                state = remaining - take == 0 ? .endPending : .body(remaining: remaining - take)
                return (off + take, .body(off..<(off + take)))
            case .chunkSize:
                switch parseChunkSizeLine(input, from: off) {
                case .incomplete:
                    return (off, .needMore)
                case .invalid(let e):
                    return fail(e)
                case .size(let size, let lineLength):
                    off += lineLength
                    if size == 0 {
                        state = .trailers(bytes: 0)
                    } else {
                        if size > limits.maxBodyBytes - bodyTotal {
                            return fail(ParseError(status: 413, reason: "request body larger than \(limits.maxBodyBytes) bytes"))
                        }
                        bodyTotal += size
                        state = .chunkData(remaining: size)
                    }
                }
            case .chunkData(let remaining):
                let take = min(remaining, n - off)
                if take == 0 { return (off, .needMore) }
                state = remaining - take == 0 ? .chunkDataCRLF : .chunkData(remaining: remaining - take)
                return (off + take, .body(off..<(off + take)))
            case .chunkDataCRLF:
                if n - off < 2 {
                    if n - off == 1 && input[off] != 13 { return fail(ParseError(status: 400, reason: "chunk data not followed by CRLF")) }
                    return (off, .needMore)
                }
                guard input[off] == 13 && input[off + 1] == 10 else {
                    return fail(ParseError(status: 400, reason: "chunk data not followed by CRLF"))
                }
                off += 2
                state = .chunkSize
            case .trailers(let bytes):
                // The first error in byte order wins — a bare CR/LF (400) or the byte that
                // takes the section over the limit (431) — so the outcome does not depend on
                // where the input was split.
                let lineEnd = findLineEnd(input, from: off)
                let scanEnd = lineEnd.map { $0 + 2 } ?? n
                let bare = firstBareLineBreak(input, from: off, to: lineEnd ?? n)
                let overAt = bytes + (scanEnd - off) > limits.maxHeadBytes ? off + (limits.maxHeadBytes - bytes) : Int.max
                if let bare, bare < overAt { return fail(ParseError(status: 400, reason: input[bare] == 10 ? "bare LF" : "bare CR")) }
                if overAt != Int.max {
                    return fail(ParseError(status: 431, reason: "trailer section larger than \(limits.maxHeadBytes) bytes"))
                }
                guard let lineEnd else { return (off, .needMore) }
                let lineLength = lineEnd + 2 - off
                if lineEnd == off {   // empty line: end of the trailer section
                    off += 2
                    state = .endPending
                    continue
                }
                if case .failure(let e) = parseFieldLine(input, from: off, to: lineEnd) { return fail(e) }
                off += lineLength
                state = .trailers(bytes: bytes + lineLength)
            }
        }
    }

    mutating func fail(_ e: ParseError) -> (consumed: Int, event: ParseEvent) {
        state = .failed(e)
        return (0, .error(e))
    }

    // MARK: Head

    mutating func parseHead(_ p: UnsafeRawBufferPointer) -> (consumed: Int, event: ParseEvent) {
        let n = p.count
        // Leading empty lines.
        var start = 0
        var empties = 0
        while start < n && (p[start] == 13 || p[start] == 10) {
            if p[start] == 10 { return fail(ParseError(status: 400, reason: "bare LF")) }
            if start + 1 >= n { return (0, .needMore) }
            if p[start + 1] != 10 { return fail(ParseError(status: 400, reason: "bare CR")) }
            start += 2
            empties += 1
            if empties > RequestParser.maxLeadingEmptyLines { return fail(ParseError(status: 400, reason: "too many empty lines before the request")) }
        }
        // Scan for CRLF CRLF, validating line breaks on the way; resume where we stopped.
        var i = max(start, scanned)
        var end = -1
        while i < n {
            let b = p[i]
            if b == 10 {
                if i == start || p[i - 1] != 13 { return fail(ParseError(status: 400, reason: "bare LF")) }
                if i - start >= 3 && p[i - 2] == 10 && p[i - 3] == 13 {
                    end = i + 1
                    break
                }
            } else if b == 13 {
                if i + 1 < n && p[i + 1] != 10 { return fail(ParseError(status: 400, reason: "bare CR")) }
            }
            i += 1
            if i - start > limits.maxHeadBytes {
                return fail(ParseError(status: 431, reason: "request head larger than \(limits.maxHeadBytes) bytes"))
            }
        }
        if end < 0 {
            // Keep the last byte unscanned: a CR at the end must be re-checked against what follows.
            scanned = max(start, n - 1)
            return (0, .needMore)
        }
        if end - start > limits.maxHeadBytes {
            return fail(ParseError(status: 431, reason: "request head larger than \(limits.maxHeadBytes) bytes"))
        }
        switch buildHead(p, from: start, to: end - 2) {
        case .failure(let e):
            return fail(e)
        case .success(let head):
            scanned = 0
            switch head.framing {
            case .none, .contentLength(0):
                state = .endPending
            case .contentLength(let len):
                state = .body(remaining: len)
            case .chunked:
                state = .chunkSize
            }
            return (end, .head(head))
        }
    }

    /// Builds the head from `p[from..<to]` (request line + field lines, each ending CRLF).
    func buildHead(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> Result<RequestHead, ParseError> {
        // Request line.
        guard let lineEnd = findLineEnd(p, from: from), lineEnd <= to else {
            return .failure(ParseError(status: 400, reason: "malformed request line"))
        }
        var i = from
        while i < lineEnd && isTchar(p[i]) { i += 1 }
        guard i > from, i < lineEnd, p[i] == 32 else { return .failure(ParseError(status: 400, reason: "malformed method")) }
        let method = string(p, from, i)
        i += 1
        let targetStart = i
        var queryStart = -1
        while i < lineEnd && p[i] > 32 && p[i] < 127 {
            if p[i] == 63 && queryStart < 0 { queryStart = i }
            i += 1
        }
        guard i > targetStart, i < lineEnd, p[i] == 32 else {
            return .failure(ParseError(status: 400, reason: "malformed request target"))
        }
        let targetEnd = i
        i += 1
        // HTTP-version = "HTTP/" DIGIT "." DIGIT
        guard lineEnd - i == 8, p[i] == 72, p[i + 1] == 84, p[i + 2] == 84, p[i + 3] == 80, p[i + 4] == 47,
              isDigit(p[i + 5]), p[i + 6] == 46, isDigit(p[i + 7]) else {
            return .failure(ParseError(status: 400, reason: "malformed HTTP version"))
        }
        let version: HTTPVersion
        switch (p[i + 5], p[i + 7]) {
        case (49, 49): version = .http1_1
        case (49, 48): version = .http1_0
        default: return .failure(ParseError(status: 505, reason: "HTTP version not supported"))
        }
        let first = p[targetStart]
        guard first == 47 || (first == 42 && targetEnd - targetStart == 1) || isAlpha(first) else {
            return .failure(ParseError(status: 400, reason: "malformed request target"))
        }
        let target = string(p, targetStart, targetEnd)
        let path = queryStart < 0 ? target : string(p, targetStart, queryStart)
        let query: String? = queryStart < 0 ? nil : string(p, queryStart + 1, targetEnd)

        // Field lines.
        var headers = HTTPHeaders()
        headers.fields.reserveCapacity(8)   // one allocation for a typical request, not four growths
        var hosts = 0
        var contentLengths: [String] = []
        var transferCodings: [String] = []
        var sawTransferEncoding = false
        var connectionClose = false
        var connectionKeepAlive = false
        var expectsContinue = false
        var pos = lineEnd + 2
        while pos < to {
            guard let end = findLineEnd(p, from: pos), end <= to else {
                return .failure(ParseError(status: 400, reason: "malformed header line"))
            }
            switch parseFieldLine(p, from: pos, to: end) {
            case .failure(let e):
                return .failure(e)
            case .success(let field):
                headers.add(name: field.name, value: field.value)
                let name = field.name
                if asciiCaseInsensitiveEquals(name, "host") {
                    hosts += 1
                } else if asciiCaseInsensitiveEquals(name, "content-length") {
                    contentLengths.append(field.value)
                } else if asciiCaseInsensitiveEquals(name, "transfer-encoding") {
                    sawTransferEncoding = true
                    for part in field.value.split(separator: ",", omittingEmptySubsequences: false) {
                        transferCodings.append(trimOWS(part).lowercased())
                    }
                } else if asciiCaseInsensitiveEquals(name, "connection") {
                    for token in field.value.split(separator: ",") {
                        let t = trimOWS(token)
                        if asciiCaseInsensitiveEquals(t, "close") { connectionClose = true }
                        if asciiCaseInsensitiveEquals(t, "keep-alive") { connectionKeepAlive = true }
                    }
                } else if asciiCaseInsensitiveEquals(name, "expect") {
                    if asciiCaseInsensitiveEquals(field.value, "100-continue") { expectsContinue = true }
                }
            }
            pos = end + 2
        }
        if hosts > 1 { return .failure(ParseError(status: 400, reason: "more than one Host header")) }
        if version == .http1_1 && hosts == 0 { return .failure(ParseError(status: 400, reason: "missing Host header")) }

        var framing = BodyFraming.none
        if sawTransferEncoding {
            if version == .http1_0 { return .failure(ParseError(status: 400, reason: "Transfer-Encoding in HTTP/1.0")) }
            if !contentLengths.isEmpty { return .failure(ParseError(status: 400, reason: "Content-Length and Transfer-Encoding together")) }
            if transferCodings.contains("") { return .failure(ParseError(status: 400, reason: "malformed Transfer-Encoding")) }
            if transferCodings.filter({ $0 == "chunked" }).count > 1 {
                return .failure(ParseError(status: 400, reason: "chunked applied more than once"))
            }
            if transferCodings.last != "chunked" {
                return .failure(ParseError(status: 400, reason: "final transfer coding is not chunked"))
            }
            if transferCodings.count > 1 {
                return .failure(ParseError(status: 501, reason: "transfer coding \(transferCodings[0]) not implemented"))
            }
            framing = .chunked
        } else if !contentLengths.isEmpty {
            if contentLengths.count > 1 { return .failure(ParseError(status: 400, reason: "more than one Content-Length")) }
            let v = contentLengths[0].utf8
            guard !v.isEmpty, v.count <= RequestParser.maxContentLengthDigits, v.allSatisfy(isDigit), let len = Int(contentLengths[0]) else {
                return .failure(ParseError(status: 400, reason: "malformed Content-Length"))
            }
            if len > limits.maxBodyBytes {
                return .failure(ParseError(status: 413, reason: "request body larger than \(limits.maxBodyBytes) bytes"))
            }
            framing = .contentLength(len)
        }
        let keepAlive = version == .http1_1 ? !connectionClose : (connectionKeepAlive && !connectionClose)
        return .success(RequestHead(method: method, target: target, path: path, query: query, version: version,
                                    headers: headers, keepAlive: keepAlive, expectsContinue: expectsContinue,
                                    framing: framing))
    }

    /// `name ":" OWS value OWS` in `p[from..<to]` (no CRLF).
    func parseFieldLine(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> Result<(name: String, value: String), ParseError> {
        if p[from] == 32 || p[from] == 9 { return .failure(ParseError(status: 400, reason: "obsolete line folding")) }
        var i = from
        while i < to && isTchar(p[i]) { i += 1 }
        guard i < to, p[i] == 58 else {
            if i < to && (p[i] == 32 || p[i] == 9) { return .failure(ParseError(status: 400, reason: "whitespace before colon in header")) }
            return .failure(ParseError(status: 400, reason: "malformed header line"))
        }
        guard i > from else { return .failure(ParseError(status: 400, reason: "empty header name")) }
        let name = string(p, from, i)
        var vs = i + 1
        while vs < to && (p[vs] == 32 || p[vs] == 9) { vs += 1 }
        var ve = to
        while ve > vs && (p[ve - 1] == 32 || p[ve - 1] == 9) { ve -= 1 }
        var j = vs
        while j < ve {
            let b = p[j]
            if (b < 32 && b != 9) || b == 127 { return .failure(ParseError(status: 400, reason: "control character in header value")) }
            j += 1
        }
        return .success((name, string(p, vs, ve)))
    }

    // MARK: Chunked

    enum ChunkLine { case incomplete, invalid(ParseError), size(Int, lineLength: Int) }

    func parseChunkSizeLine(_ p: UnsafeRawBufferPointer, from: Int) -> ChunkLine {
        guard let end = findLineEnd(p, from: from) else {
            // +1: the line's CR may already be here without its LF.
            if p.count - from > RequestParser.maxChunkLineBytes + 1 { return .invalid(ParseError(status: 400, reason: "chunk size line too long")) }
            if let e = bareLineBreak(p, from: from, to: p.count) { return .invalid(e) }
            return .incomplete
        }
        if end - from > RequestParser.maxChunkLineBytes { return .invalid(ParseError(status: 400, reason: "chunk size line too long")) }
        if let e = bareLineBreak(p, from: from, to: end) { return .invalid(e) }
        var i = from
        var size = 0
        while i < end, let d = hexValue(p[i]) {
            if i - from >= RequestParser.maxChunkSizeDigits { return .invalid(ParseError(status: 400, reason: "chunk size too large")) }
            size = size << 4 | d
            i += 1
        }
        if i == from { return .invalid(ParseError(status: 400, reason: "bad chunk size")) }
        // chunk-ext = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
        while true {
            while i < end && (p[i] == 32 || p[i] == 9) { i += 1 }
            if i == end { break }
            guard p[i] == 59 else { return .invalid(ParseError(status: 400, reason: "bad chunk size")) }
            i += 1
            while i < end && (p[i] == 32 || p[i] == 9) { i += 1 }
            let ns = i
            while i < end && isTchar(p[i]) { i += 1 }
            if i == ns { return .invalid(ParseError(status: 400, reason: "bad chunk extension")) }
            while i < end && (p[i] == 32 || p[i] == 9) { i += 1 }
            if i < end && p[i] == 61 {
                i += 1
                while i < end && (p[i] == 32 || p[i] == 9) { i += 1 }
                if i < end && p[i] == 34 {
                    i += 1
                    var closed = false
                    while i < end {
                        let b = p[i]
                        if b == 92 { i += 2; continue }
                        if b == 34 { closed = true; i += 1; break }
                        if (b < 32 && b != 9) || b == 127 { return .invalid(ParseError(status: 400, reason: "bad chunk extension")) }
                        i += 1
                    }
                    if !closed || i > end { return .invalid(ParseError(status: 400, reason: "bad chunk extension")) }
                } else {
                    let vs = i
                    while i < end && isTchar(p[i]) { i += 1 }
                    if i == vs { return .invalid(ParseError(status: 400, reason: "bad chunk extension")) }
                }
            }
        }
        return .size(size, lineLength: end + 2 - from)
    }

    // MARK: Bytes

    /// Index of the CR of the first CRLF at or after `from`, or nil.
    func findLineEnd(_ p: UnsafeRawBufferPointer, from: Int) -> Int? {
        var i = from
        let n = p.count
        while i + 1 < n {
            if p[i] == 13 && p[i + 1] == 10 { return i }
            i += 1
        }
        return nil
    }

    /// Index of the first CR not followed by LF, or LF not preceded by CR, in `p[from..<to]`.
    func firstBareLineBreak(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> Int? {
        var i = from
        while i < to {
            if p[i] == 10 && (i == from || p[i - 1] != 13) { return i }
            if p[i] == 13 && i + 1 < p.count && p[i + 1] != 10 { return i }
            i += 1
        }
        return nil
    }

    /// A CR not followed by LF, or an LF not preceded by CR, in `p[from..<to]`.
    func bareLineBreak(_ p: UnsafeRawBufferPointer, from: Int, to: Int) -> ParseError? {
        var i = from
        while i < to {
            if p[i] == 10 && (i == from || p[i - 1] != 13) { return ParseError(status: 400, reason: "bare LF") }
            if p[i] == 13 && i + 1 < p.count && p[i + 1] != 10 { return ParseError(status: 400, reason: "bare CR") }
            i += 1
        }
        return nil
    }

    func string(_ p: UnsafeRawBufferPointer, _ from: Int, _ to: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: p[from..<to]), as: UTF8.self)
    }
}

@inline(__always) func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
@inline(__always) func isAlpha(_ b: UInt8) -> Bool { (b | 0x20) >= 97 && (b | 0x20) <= 122 }

@inline(__always) func hexValue(_ b: UInt8) -> Int? {
    switch b {
    case 48...57: return Int(b - 48)
    case 65...70: return Int(b - 55)
    case 97...102: return Int(b - 87)
    default: return nil
    }
}

/// tchar (RFC 9110 §5.6.2): "!#$%&'*+-.^_`|~", DIGIT, ALPHA.
let tcharTable: [Bool] = (0..<256).map { c in
    switch c {
    case 48...57, 65...90, 97...122: return true
    default: return "!#$%&'*+-.^_`|~".utf8.contains(UInt8(c))
    }
}

@inline(__always) func isTchar(_ b: UInt8) -> Bool { tcharTable[Int(b)] }

func trimOWS(_ s: Substring) -> String {
    var t = s[...]
    while let f = t.first, f == " " || f == "\t" { t = t.dropFirst() }
    while let l = t.last, l == " " || l == "\t" { t = t.dropLast() }
    return String(t)
}
