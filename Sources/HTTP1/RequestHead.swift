/// The values the parser produces: a request's head, its framing, its limits and errors.
/// Pure data; no I/O.

/// `--max-head-bytes` / `--max-body-bytes` (SPEC §5).
public struct HTTPLimits: Sendable, Equatable {
    /// Request line + header fields (+ chunked trailers); beyond → 431.
    public var maxHeadBytes: Int
    /// Body bytes (de-chunked); beyond → 413.
    public var maxBodyBytes: Int

    public init(maxHeadBytes: Int = 16384, maxBodyBytes: Int = 20_971_520) {
        self.maxHeadBytes = maxHeadBytes
        self.maxBodyBytes = maxBodyBytes
    }
}

public enum HTTPVersion: Sendable, Equatable {
    case http1_0, http1_1
}

/// How the body is delimited (RFC 9112 §6.3).
public enum BodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int)
    case chunked
}

public struct RequestHead: Sendable, Equatable {
    /// As sent: methods are case-sensitive (RFC 9110 §9.1).
    public var method: String
    /// The raw request-target.
    public var target: String
    /// The target up to `?`.
    public var path: String
    /// After `?`; nil when there is no `?`.
    public var query: String?
    public var version: HTTPVersion
    public var headers: HTTPHeaders
    /// HTTP/1.1: unless `Connection: close`; HTTP/1.0: only with `Connection: keep-alive`.
    public var keepAlive: Bool
    /// `Expect: 100-continue`.
    public var expectsContinue: Bool
    public var framing: BodyFraming
    /// Whether a body follows the head (chunked, or a Content-Length above 0).
    public var hasBody: Bool { framing != .none && framing != .contentLength(0) }

    public init(method: String, target: String, path: String, query: String?, version: HTTPVersion,
                headers: HTTPHeaders, keepAlive: Bool, expectsContinue: Bool, framing: BodyFraming) {
        self.method = method
        self.target = target
        self.path = path
        self.query = query
        self.version = version
        self.headers = headers
        self.keepAlive = keepAlive
        self.expectsContinue = expectsContinue
        self.framing = framing
    }
}

/// A request the parser rejects. Terminal for the connection: the server answers `status`
/// and closes (after an error the byte stream can no longer be trusted to be in sync).
public struct ParseError: Error, Sendable, Equatable {
    /// 400, 413, 431, 501 or 505.
    public var status: Int
    /// Short, specific and safe to send to the client.
    public var reason: String

    public init(status: Int, reason: String) {
        self.status = status
        self.reason = reason
    }
}

public enum ParseEvent: Sendable, Equatable {
    /// Everything usable was consumed; call again with more bytes appended.
    case needMore
    case head(RequestHead)
    /// Body bytes (de-chunked): indices into the buffer passed to this call.
    case body(Range<Int>)
    /// The request is complete; the next call starts the next one (pipelining).
    case end
    /// Terminal; later calls return it again.
    case error(ParseError)
}
