/// HTTPHandler: the seam between the HTTP/1.1 connection driver and the application.
///
/// The driver parses, frames and orders; the handler decides. A handler answers at once
/// (`.respond`) or later through its `Responder` (`.deferred`), e.g. after work spanning
/// loop iterations. Either way the bytes reach the socket only in the loop tail's `flush`
/// phase, after the `commit` phase — so a response that depends on a database write made
/// while handling is never sent before that write is durable. Responses leave in request
/// order whatever order they are produced in (pipelining, RFC 9112 §9.3.2).
import HTTP1
import Reactor

public struct HTTPRequest: Sendable {
    public var head: RequestHead
    public var body: [UInt8]
    /// When the head was complete (monotonic).
    public var receivedAt: Instant
    /// What the handler's `checkBeforeBody` approved the head with (e.g. the authenticated
    /// token), so the request is not checked twice; nil for requests without a body.
    public var approval: RequestApproval?

    public init(head: RequestHead, body: [UInt8], receivedAt: Instant, approval: RequestApproval? = nil) {
        self.head = head
        self.body = body
        self.receivedAt = receivedAt
        self.approval = approval
    }
}

/// The handler's decision on the head of a request that carries a body.
public enum HeadDecision {
    /// Read the body; `approval` travels with the request to `handle`.
    case proceed(approval: RequestApproval?)
    /// Answer this at once and close without reading the body.
    case refuse(HTTPResponse)
}

public enum HandlerResult {
    case respond(HTTPResponse)
    /// The handler keeps the `Responder` and calls `respond` later (in the same thread).
    case deferred
}

public protocol HTTPHandler: AnyObject {
    func handle(_ request: HTTPRequest, responder: Responder) -> HandlerResult
    /// The response to a request the parser rejected (400, 413, 431, 501, 505). The connection
    /// is closed after it.
    func errorResponse(for error: ParseError) -> HTTPResponse
    /// A small index naming the route a request goes to, for an observer's labels (-1: none).
    func routeIndex(for head: RequestHead) -> Int
    /// Called when the head of a request that carries a body is complete, before
    /// `100 Continue` is sent and before any of the body is kept: a refusal here (unknown
    /// route, wrong method, no valid token, wrong Content-Type) is sent at once and the
    /// connection closed without reading the body — an unauthenticated client cannot make
    /// the server hold its body in memory.
    func checkBeforeBody(_ head: RequestHead) -> HeadDecision
}

extension HTTPHandler {
    public func routeIndex(for head: RequestHead) -> Int { -1 }
    public func checkBeforeBody(_ head: RequestHead) -> HeadDecision { .proceed(approval: nil) }
}

/// Watches the server's responses (metrics). Called on the loop, once per response, when the
/// handler produced it; must not allocate on its hot path.
/// One answered request, for an access log (`HTTPServer.accessLog`).
public struct AccessRecord: Sendable {
    public var method: String
    /// The request target as sent (path and query; credentials never travel there).
    public var target: String
    public var status: Int
    /// Response body bytes.
    public var bytes: Int
    /// From the head's arrival to the answer.
    public var seconds: Double
    public var peer: String
    /// Who called, as the handler's approval names it (a token's name — never its secret).
    public var user: String?
}

public protocol AccessLogSink: AnyObject {
    func record(_ r: AccessRecord)
}

/// What a handler's `checkBeforeBody` approved a head with; a handler subclasses it to carry
/// its own facts (e.g. the authenticated token) to `handle`. A class rather than an existential:
/// the driver reads `logName` and the handler gets its subclass back with a class cast, no
/// dynamic protocol cast per request.
open class RequestApproval: @unchecked Sendable {
    /// Who called, for the access log (a token's name — never its secret).
    public let logName: String?
    public init(logName: String?) { self.logName = logName }
}

public protocol HTTPServerObserver: AnyObject {
    /// `receivedAt`: when the request's head was complete (for a parse error, now).
    func responded(route: Int, status: Int, receivedAt: Instant)
}

/// Answers one request later. Outliving the connection is fine: the answer is dropped.
public struct Responder {
    weak var connection: Connection?
    let sequence: UInt64

    public func respond(_ response: HTTPResponse) {
        connection?.complete(sequence: sequence, response: response)
    }
}
