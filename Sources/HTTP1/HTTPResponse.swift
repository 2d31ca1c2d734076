/// HTTPResponse: a status, the handler's headers and a body, serialized as HTTP/1.1 with
/// the framing the server owns: `Content-Length` always, `Date` always (RFC 9110 §6.6.1),
/// `Connection: close` when the connection ends after it. Header values are ours, never a
/// client's verbatim, and a CR or LF in one is a programming error (response splitting).
public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func serialize(into buffer: inout [UInt8], date: String, keepAlive: Bool, version: HTTPVersion = .http1_1) {
        buffer.append(contentsOf: "HTTP/1.1 ".utf8)
        appendStatus(&buffer)
        for (name, value) in headers {
            precondition(!name.utf8.contains(13) && !name.utf8.contains(10) && !value.utf8.contains(13) && !value.utf8.contains(10),
                         "CR/LF in response header \(name)")
            buffer.append(contentsOf: name.utf8)
            buffer.append(58)
            buffer.append(32)
            buffer.append(contentsOf: value.utf8)
            buffer.append(13)
            buffer.append(10)
        }
        buffer.append(contentsOf: "Content-Length: ".utf8)
        appendDecimal(body.count, &buffer)
        buffer.append(contentsOf: "\r\nDate: ".utf8)
        buffer.append(contentsOf: date.utf8)
        buffer.append(13)
        buffer.append(10)
        if !keepAlive {
            buffer.append(contentsOf: "Connection: close\r\n".utf8)
        } else if version == .http1_0 {
            buffer.append(contentsOf: "Connection: keep-alive\r\n".utf8)
        }
        buffer.append(13)
        buffer.append(10)
        buffer.append(contentsOf: body)
    }

    func appendStatus(_ buffer: inout [UInt8]) {
        appendDecimal(status, &buffer)
        buffer.append(32)
        buffer.append(contentsOf: reasonPhrase(status).utf8)
        buffer.append(13)
        buffer.append(10)
    }
}

/// A non-negative integer's decimal digits (the status line, Content-Length, the access log).
@inline(__always)
public func appendDecimal(_ value: Int, _ buffer: inout [UInt8]) {
    if value == 0 { buffer.append(48); return }
    var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                 UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    var v = value
    var count = 0
    withUnsafeMutableBytes(of: &digits) { d in
        while v > 0 {
            d[count] = UInt8(48 + v % 10)
            v /= 10
            count += 1
        }
        for i in stride(from: count - 1, through: 0, by: -1) { buffer.append(d[i]) }
    }
}

/// "HTTP/1.1 100 Continue" (RFC 9110 §15.2.1), sent before reading a body the client holds back.
public let continueResponse: [UInt8] = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

/// RFC 9110 §15 reason phrases.
public func reasonPhrase(_ status: Int) -> String {
    switch status {
    case 100: return "Continue"
    case 200: return "OK"
    case 201: return "Created"
    case 202: return "Accepted"
    case 204: return "No Content"
    case 301: return "Moved Permanently"
    case 302: return "Found"
    case 304: return "Not Modified"
    case 400: return "Bad Request"
    case 401: return "Unauthorized"
    case 403: return "Forbidden"
    case 404: return "Not Found"
    case 405: return "Method Not Allowed"
    case 408: return "Request Timeout"
    case 409: return "Conflict"
    case 411: return "Length Required"
    case 413: return "Content Too Large"
    case 414: return "URI Too Long"
    case 415: return "Unsupported Media Type"
    case 417: return "Expectation Failed"
    case 422: return "Unprocessable Content"
    case 429: return "Too Many Requests"
    case 431: return "Request Header Fields Too Large"
    case 500: return "Internal Server Error"
    case 501: return "Not Implemented"
    case 502: return "Bad Gateway"
    case 503: return "Service Unavailable"
    case 505: return "HTTP Version Not Supported"
    default: return "Unknown"
    }
}
