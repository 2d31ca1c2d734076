/// Capabilities: what an EHLO reply (RFC 5321 §4.1.1.1) offers. Keywords are matched
/// case-insensitively (servers write `pipelining`, `Auth=LOGIN` …). The first line is the
/// greeting, not a capability.
///   PIPELINING RFC 2920 · SIZE RFC 1870 · 8BITMIME RFC 6152 · SMTPUTF8 RFC 6531 ·
///   STARTTLS RFC 3207 · AUTH RFC 4954 (and the obsolete `AUTH=` form) · ENHANCEDSTATUSCODES RFC 2034
public struct Capabilities: Sendable, Equatable {
    public var pipelining = false
    public var startTLS = false
    public var eightBitMIME = false
    public var smtpUTF8 = false
    public var enhancedStatusCodes = false
    /// nil: SIZE not offered; 0: offered without a limit.
    public var size: Int?
    /// Upper-cased SASL mechanism names.
    public var authMechanisms: Set<String> = []

    public init() {}

    public init(ehlo reply: SMTPReply) {
        for line in reply.lines.dropFirst() {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard let first = words.first else { continue }
            var keyword = first.uppercased()
            var params = words.dropFirst().map { $0.uppercased() }
            if keyword.hasPrefix("AUTH=") {
                params.insert(String(keyword.dropFirst(5)), at: 0)
                keyword = "AUTH"
            }
            switch keyword {
            case "PIPELINING": pipelining = true
            case "STARTTLS": startTLS = true
            case "8BITMIME": eightBitMIME = true
            case "SMTPUTF8": smtpUTF8 = true
            case "ENHANCEDSTATUSCODES": enhancedStatusCodes = true
            case "SIZE": size = params.first.flatMap { Int($0) } ?? 0
            case "AUTH": authMechanisms.formUnion(params.filter { !$0.isEmpty })
            default: break
            }
        }
    }
}
