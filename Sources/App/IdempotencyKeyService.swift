/// `POST /api/idempotency_key` (SPEC §4, the Tickiti API overview): a fresh key for a
/// forthcoming write, for clients that cannot make UUIDs. No authentication and no storage —
/// it writes nothing, so it cannot be used to fill the database; the body is empty or `{}`.
import HTTP1
import HTTPServer
import JSON
import SendAPI

enum IdempotencyKeyService {
    /// A random (version 4, RFC 9562 §5.4) UUID from the system's cryptographic source.
    static func uuidV4<R: RandomNumberGenerator>(using rng: inout R) -> String {
        var bytes = (0..<2).flatMap { _ -> [UInt8] in
            let v = rng.next()
            return (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
        }
        bytes[6] = bytes[6] & 0x0F | 0x40
        bytes[8] = bytes[8] & 0x3F | 0x80
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(36)
        for (i, b) in bytes.enumerated() {
            if i == 4 || i == 6 || i == 8 || i == 10 { out.append(0x2D) }
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func handle(_ request: HTTPRequest) -> HTTPResponse {
        if !request.body.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0A || $0 == 0x0D }) {
            guard SendAPI.contentTypeIsJSON(request.head.headers["Content-Type"]) else { return APIError.unsupportedMediaType.response }
            guard case .object(let members)? = try? JSONParser.parse(request.body), members.isEmpty else {
                return APIError.validation([("body", ["must be empty or {}: this endpoint takes no parameters"])]).response
            }
        }
        var rng = SystemRandomNumberGenerator()
        let body = "{\"ok\":true,\"data\":{\"idempotency_key\":\"\(uuidV4(using: &rng))\"}}"
        return HTTPResponse(status: 200, headers: HTTPHeaders([(name: "Content-Type", value: "application/json"), (name: "Cache-Control", value: "no-store")]),
                            body: Array(body.utf8))
    }
}
