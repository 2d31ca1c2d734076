/// RequestParser: a table of well-formed and malformed requests, each run whole, split at
/// every byte boundary and byte by byte — the outcome must not depend on how bytes arrive.
import Testing
@testable import HTTP1

struct Req: Equatable, CustomStringConvertible {
    var method: String
    var target: String
    var body: String = ""
    var keepAlive = true
    var expectsContinue = false
    var description: String { "\(method) \(target) body=\(body.count) keepAlive=\(keepAlive)" }
}

struct Outcome: Equatable {
    var requests: [Req] = []
    var error: Int?
}

struct Case: CustomTestStringConvertible, Sendable {
    var name: String
    var raw: String
    var requests: [Req]
    var error: Int?
    var limits = HTTPLimits(maxHeadBytes: 1024, maxBodyBytes: 4096)
    var testDescription: String { name }
}

extension Req: @unchecked Sendable {}

func get(_ target: String = "/", keepAlive: Bool = true) -> Req { Req(method: "GET", target: target, keepAlive: keepAlive) }
func post(_ target: String = "/", _ body: String, keepAlive: Bool = true, expectsContinue: Bool = false) -> Req {
    Req(method: "POST", target: target, body: body, keepAlive: keepAlive, expectsContinue: expectsContinue)
}

/// Feeds the chunks as the connection driver does and collects what the parser said.
func feed(_ chunks: [[UInt8]], limits: HTTPLimits) -> Outcome {
    var parser = RequestParser(limits: limits)
    var buffer: [UInt8] = []
    var out = Outcome()
    var current: Req?
    var body: [UInt8] = []
    for chunk in chunks {
        buffer += chunk
        loop: while true {
            let (consumed, event) = parser.parse(buffer)
            switch event {
            case .needMore:
                buffer.removeFirst(consumed)
                break loop
            case .head(let h):
                current = Req(method: h.method, target: h.target, keepAlive: h.keepAlive, expectsContinue: h.expectsContinue)
                body = []
            case .body(let r):
                body += buffer[r]
            case .end:
                current!.body = String(decoding: body, as: UTF8.self)
                out.requests.append(current!)
                current = nil
            case .error(let e):
                out.error = e.status
                return out
            }
            buffer.removeFirst(consumed)
        }
    }
    return out
}

let big = String(repeating: "a", count: 2000)

let cases: [Case] = [
    // Well-formed
    Case(name: "simple GET", raw: "GET / HTTP/1.1\r\nHost: a\r\n\r\n", requests: [get()]),
    Case(name: "GET with query", raw: "GET /p?x=1&y=2 HTTP/1.1\r\nHost: a\r\n\r\n", requests: [get("/p?x=1&y=2")]),
    Case(name: "POST with Content-Length", raw: "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", requests: [post("/e", "hello")]),
    Case(name: "Content-Length 0", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", requests: [post("/", "")]),
    Case(name: "HTTP/1.0 closes by default", raw: "GET / HTTP/1.0\r\n\r\n", requests: [get(keepAlive: false)]),
    Case(name: "HTTP/1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", requests: [get()]),
    Case(name: "Connection: close", raw: "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", requests: [get(keepAlive: false)]),
    Case(name: "Connection token list", raw: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade, CLOSE\r\n\r\n", requests: [get(keepAlive: false)]),
    Case(name: "Expect 100-continue", raw: "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nok",
         requests: [post("/", "ok", expectsContinue: true)]),
    Case(name: "case-insensitive names", raw: "POST / HTTP/1.1\r\nhOsT: a\r\ncontent-LENGTH: 3\r\n\r\nabc", requests: [post("/", "abc")]),
    Case(name: "repeated headers kept", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-A: 2\r\n\r\n", requests: [get()]),
    Case(name: "leading empty lines", raw: "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", requests: [get()]),
    Case(name: "absolute-form target", raw: "GET http://a/x HTTP/1.1\r\nHost: a\r\n\r\n", requests: [get("http://a/x")]),
    Case(name: "asterisk-form", raw: "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", requests: [Req(method: "OPTIONS", target: "*")]),
    Case(name: "OWS around value", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \t 2 \t\r\n\r\nhi", requests: [post("/", "hi")]),
    Case(name: "empty header value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n", requests: [get()]),
    Case(name: "obs-text in value", raw: "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\u{e9}\r\n\r\n", requests: [get()]),
    Case(name: "chunked", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
         requests: [post("/", "hello world")]),
    Case(name: "chunked with extensions", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a=b;c\r\nhello\r\n3 ; q=\"x;y\"\r\nabc\r\n0;last\r\n\r\n",
         requests: [post("/", "helloabc")]),
    Case(name: "chunked with trailers", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: 1\r\nX-More: 2\r\n\r\n",
         requests: [post("/", "ok")]),
    Case(name: "chunked uppercase hex", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
         requests: [post("/", "0123456789")]),
    Case(name: "pipelined three", raw: "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nxGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
         requests: [get("/1"), post("/2", "x"), get("/3")]),
    Case(name: "head exactly at limit", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "b", count: 1024 - 32))\r\n\r\n", requests: [get()]),
    Case(name: "head one byte over limit", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "b", count: 1024 - 31))\r\n\r\n", requests: [], error: 431),
    Case(name: "body exactly at limit", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4096\r\n\r\n\(String(repeating: "z", count: 4096))",
         requests: [post("/", String(repeating: "z", count: 4096))]),
    Case(name: "unknown method accepted by parser", raw: "PURGE / HTTP/1.1\r\nHost: a\r\n\r\n", requests: [Req(method: "PURGE", target: "/")]),

    // Malformed
    Case(name: "obs-fold", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n", requests: [], error: 400),
    Case(name: "space before colon", raw: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", requests: [], error: 400),
    Case(name: "bare LF", raw: "GET / HTTP/1.1\nHost: a\n\n", requests: [], error: 400),
    Case(name: "bare CR", raw: "GET / HTTP/1.1\rHost: a\r\n\r\n", requests: [], error: 400),
    Case(name: "NUL in header", raw: "GET / HTTP/1.1\r\nHost: a\u{0}b\r\n\r\n", requests: [], error: 400),
    Case(name: "missing Host", raw: "GET / HTTP/1.1\r\nX: 1\r\n\r\n", requests: [], error: 400),
    Case(name: "two Hosts", raw: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", requests: [], error: 400),
    Case(name: "bad method chars", raw: "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", requests: [], error: 400),
    Case(name: "double space in request line", raw: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", requests: [], error: 400),
    Case(name: "lowercase version", raw: "GET / http/1.1\r\nHost: a\r\n\r\n", requests: [], error: 400),
    Case(name: "HTTP/2.0", raw: "GET / HTTP/2.0\r\nHost: a\r\n\r\n", requests: [], error: 505),
    Case(name: "HTTP/1.2", raw: "GET / HTTP/1.2\r\nHost: a\r\n\r\n", requests: [], error: 505),
    Case(name: "HTTP/0.9-style line", raw: "GET /\r\n\r\n", requests: [], error: 400),
    Case(name: "CL + TE (smuggling)", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", requests: [], error: 400),
    Case(name: "two equal CLs", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", requests: [], error: 400),
    Case(name: "two different CLs", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy", requests: [], error: 400),
    Case(name: "CL list value", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello", requests: [], error: 400),
    Case(name: "CL with sign", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", requests: [], error: 400),
    Case(name: "CL hex", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", requests: [], error: 400),
    Case(name: "CL 19 digits", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000000000\r\n\r\n", requests: [], error: 400),
    Case(name: "TE gzip", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", requests: [], error: 501),
    Case(name: "TE final not chunked", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", requests: [], error: 400),
    Case(name: "TE chunked twice", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", requests: [], error: 400),
    Case(name: "TE split across headers, chunked twice", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", requests: [], error: 400),
    Case(name: "TE in HTTP/1.0", raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", requests: [], error: 400),
    Case(name: "bad chunk size", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", requests: [], error: 400),
    Case(name: "chunk size too long", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n", requests: [], error: 400),
    Case(name: "negative chunk size", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n", requests: [], error: 400),
    Case(name: "missing CRLF after chunk data", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", requests: [], error: 400),
    Case(name: "bad chunk extension", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2;=x\r\nab\r\n0\r\n\r\n", requests: [], error: 400),
    Case(name: "head over limit", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: \(big)\r\n\r\n", requests: [], error: 431),
    Case(name: "head over limit, never ending", raw: "GET / HTTP/1.1\r\nHost: a\r\nX: \(big)", requests: [], error: 431),
    Case(name: "CL over limit", raw: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4097\r\n\r\n", requests: [], error: 413),
    Case(name: "chunked total over limit", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n\(String(repeating: "q", count: 2048))\r\n801\r\n", requests: [], error: 413),
    Case(name: "empty header name", raw: "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", requests: [], error: 400),
    Case(name: "header without colon", raw: "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", requests: [], error: 400),
    Case(name: "target with control char", raw: "GET /a\u{7}b HTTP/1.1\r\nHost: a\r\n\r\n", requests: [], error: 400),
    Case(name: "trailer with bare LF", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: 1\n\r\n", requests: [], error: 400),
    Case(name: "bare CR in trailers before the limit wins over 431 (fuzz regression)",
         raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \(String(repeating: "a", count: 40))\r\nY: b\rccccccccccccccccccccccccc\r\n\r\n",
         requests: [], error: 400, limits: HTTPLimits(maxHeadBytes: 64, maxBodyBytes: 64)),
    Case(name: "trailers over the limit", raw: "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: \(String(repeating: "a", count: 70))\r\n\r\n",
         requests: [], error: 431, limits: HTTPLimits(maxHeadBytes: 64, maxBodyBytes: 64)),
    Case(name: "valid then garbage", raw: "GET /ok HTTP/1.1\r\nHost: a\r\n\r\nBLAH\r\n\r\n", requests: [get("/ok")], error: 400),
    Case(name: "too many leading empty lines", raw: String(repeating: "\r\n", count: 9) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n", requests: [], error: 400),
]

@Suite struct RequestParserTests {
    @Test(arguments: cases)
    func wholeInput(_ c: Case) {
        let got = feed([Array(c.raw.utf8)], limits: c.limits)
        #expect(got == Outcome(requests: c.requests, error: c.error))
    }

    @Test(arguments: cases)
    func splitAtEveryByteBoundary(_ c: Case) {
        let bytes = Array(c.raw.utf8)
        let expected = Outcome(requests: c.requests, error: c.error)
        for split in 0...bytes.count {
            let got = feed([Array(bytes[..<split]), Array(bytes[split...])], limits: c.limits)
            #expect(got == expected, "split at \(split)")
            if got != expected { break }
        }
    }

    @Test(arguments: cases)
    func oneByteAtATime(_ c: Case) {
        let got = feed(Array(c.raw.utf8).map { [$0] }, limits: c.limits)
        #expect(got == Outcome(requests: c.requests, error: c.error))
    }

    @Test func headFieldsAreExposed() {
        var p = RequestParser(limits: HTTPLimits())
        let (consumed, event) = p.parse(Array("POST /api/send_email?x=1 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 2\r\n\r\nhi".utf8))
        guard case .head(let h) = event else { Issue.record("no head: \(event)"); return }
        #expect(consumed == 81)
        #expect(h.method == "POST")
        #expect(h.path == "/api/send_email")
        #expect(h.query == "x=1")
        #expect(h.version == .http1_1)
        #expect(h.headers["x-A"] == "1")
        #expect(h.headers.values(for: "X-A") == ["1", "2"])
        #expect(h.headers.contains("HOST"))
        #expect(h.framing == .contentLength(2))
    }

    @Test func errorIsSticky() {
        var p = RequestParser(limits: HTTPLimits())
        let first = p.parse(Array("GET / HTTP/9.9\r\nHost: a\r\n\r\n".utf8))
        #expect(first.event == .error(ParseError(status: 505, reason: "HTTP version not supported")))
        let again = p.parse(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(again.consumed == 0)
        #expect(again.event == first.event)
    }

    @Test func fiftyPipelinedRequests() {
        var raw = ""
        for i in 0..<50 { raw += "GET /\(i) HTTP/1.1\r\nHost: a\r\n\r\n" }
        let got = feed([Array(raw.utf8)], limits: HTTPLimits())
        #expect(got.requests.map(\.target) == (0..<50).map { "/\($0)" })
    }

    @Test func twoMebibyteChunkedBody() {
        var body: [UInt8] = []
        var raw = Array("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var size = 1
        while body.count < 2 << 20 {
            let n = min(size, (2 << 20) - body.count)
            let chunk = (0..<n).map { UInt8(truncatingIfNeeded: body.count + $0) }
            raw += Array("\(String(n, radix: 16))\r\n".utf8) + chunk + [13, 10]
            body += chunk
            size = size * 2 + 1
        }
        raw += Array("0\r\n\r\n".utf8)
        // Fed in 1000-byte pieces.
        var pieces: [[UInt8]] = []
        var i = 0
        while i < raw.count { pieces.append(Array(raw[i..<min(i + 1000, raw.count)])); i += 1000 }
        var parser = RequestParser(limits: HTTPLimits(maxHeadBytes: 16384, maxBodyBytes: 4 << 20))
        var buffer: [UInt8] = []
        var got: [UInt8] = []
        var ended = false
        for piece in pieces {
            buffer += piece
            while true {
                let (c, e) = parser.parse(buffer)
                if case .body(let r) = e { got += buffer[r] }
                if e == .end { ended = true }
                if case .error(let err) = e { Issue.record("\(err)"); return }
                buffer.removeFirst(c)
                if e == .needMore { break }
            }
        }
        #expect(ended)
        #expect(got == body)
    }

    @Test func scanningAHeadByteByByteIsLinear() {
        // 16 KiB head fed one byte at a time: resumable scanning must not re-scan from the start.
        var p = RequestParser(limits: HTTPLimits(maxHeadBytes: 20000))
        var buffer: [UInt8] = []
        let raw = Array("GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "v", count: 16000))\r\n\r\n".utf8)
        var heads = 0
        for b in raw {
            buffer.append(b)
            let (c, e) = p.parse(buffer)
            if case .head = e { heads += 1 }
            buffer.removeFirst(c)
            #expect(p.scanned <= buffer.count)
        }
        #expect(heads == 1)
    }
}
