/// Envelope: one message to carry — the envelope sender and recipient and the stored
/// RFC 5322 bytes — plus what the transaction must ask of the relay (SMTPUTF8, 8BITMIME,
/// SIZE), computed once.
public struct Envelope: Sendable {
    public var from: String
    /// The first recipient (the message's To).
    public var to: String { recipients[0] }
    /// Every envelope recipient, one RCPT TO each, in this order (To, Cc, Bcc; never empty).
    public var recipients: [String]
    /// The message exactly as stored at acceptance (CRLF line ends).
    public var message: [UInt8]
    /// RFC 6531: a non-ASCII address or header needs the SMTPUTF8 extension.
    public var needsSMTPUTF8: Bool
    /// RFC 6152: octets ≥ 0x80 in the content.
    public var has8BitContent: Bool

    public init(from: String, to: String, message: [UInt8]) {
        self.init(from: from, recipients: [to], message: message)
    }

    public init(from: String, recipients: [String], message: [UInt8]) {
        precondition(!recipients.isEmpty, "an envelope without a recipient")
        self.from = from
        self.recipients = recipients
        self.message = message
        let eightBit = Envelope.hasHighBit(message)
        has8BitContent = eightBit
        needsSMTPUTF8 = Envelope.hasHighBit(from) || recipients.contains(where: Envelope.hasHighBit) || (eightBit && Envelope.headersHave8Bit(message))
    }

    static func hasHighBit(_ m: [UInt8]) -> Bool { m.withUnsafeBytes(hasHighBit) }

    static func hasHighBit(_ s: String) -> Bool {
        var s = s
        return s.withUTF8 { hasHighBit(UnsafeRawBufferPointer($0)) }
    }

    /// Any octet ≥ 0x80, eight at a time (it runs over every message handed to a session).
    static func hasHighBit(_ raw: UnsafeRawBufferPointer) -> Bool {
        let n = raw.count
        var i = 0
        while i + 8 <= n {
            if raw.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return true }
            i += 8
        }
        while i < n {
            if raw[i] >= 0x80 { return true }
            i += 1
        }
        return false
    }

    static func headersHave8Bit(_ m: [UInt8]) -> Bool {
        // The header section ends at the first empty line (CRLF CRLF).
        var i = 0
        while i + 3 < m.count {
            if m[i] == 0x0D && m[i + 1] == 0x0A && m[i + 2] == 0x0D && m[i + 3] == 0x0A { break }
            if m[i] >= 0x80 { return true }
            i += 1
        }
        return false
    }
}

public enum DataEncoding {
    /// The DATA payload: the message dot-stuffed (RFC 5321 §4.5.2: a line that starts with
    /// "." gets one more), bare CR or LF normalised to CRLF, ended by CRLF "." CRLF.
    public static func dotStuffed(_ message: [UInt8]) -> [UInt8] {
        // A message built here already has CRLF lines and no line starting with a dot
        // (quoted-printable encodes one): then the payload is the message and ".": one copy.
        if isCleanCRLF(message) {
            var out: [UInt8] = []
            out.reserveCapacity(message.count + 3)
            out.append(contentsOf: message)
            out.append(contentsOf: [0x2E, 0x0D, 0x0A])
            return out
        }
        return stuffedLineByLine(message)
    }

    /// Every line ends in CRLF, the last one included; no bare CR or LF; no line starts with
    /// ".". Eight bytes at a time: a word without CR or LF is skipped whole.
    static func isCleanCRLF(_ m: [UInt8]) -> Bool {
        let n = m.count
        guard n >= 2, m[0] != 0x2E, m[n - 2] == 0x0D, m[n - 1] == 0x0A else { return false }
        return m.withUnsafeBufferPointer { p in
            var crs = 0, lfs = 0
            // Every LF has a CR just before it and no dot just after; with as many CRs as LFs,
            // no CR is bare either.
            @inline(__always) func check(_ k: Int) -> Bool {
                let b = p[k]
                if b == 0x0D { crs += 1; return true }
                if b != 0x0A { return true }
                lfs += 1
                return k > 0 && p[k - 1] == 0x0D && (k + 1 == n || p[k + 1] != 0x2E)
            }
            let raw = UnsafeRawBufferPointer(p)
            var i = 0
            while i + 8 <= n {
                let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
                if hasByte(w, 0x0D) || hasByte(w, 0x0A) {
                    for k in i..<(i + 8) where !check(k) { return false }
                }
                i += 8
            }
            while i < n {
                if !check(i) { return false }
                i += 1
            }
            return crs == lfs
        }
    }

    /// Whether any byte of `w` equals `c` (the classic zero-byte test on `w ^ c…c`).
    @inline(__always) static func hasByte(_ w: UInt64, _ c: UInt8) -> Bool {
        let x = w ^ (0x0101_0101_0101_0101 &* UInt64(c))
        return (x &- 0x0101_0101_0101_0101) & ~x & 0x8080_8080_8080_8080 != 0
    }

    static func stuffedLineByLine(_ message: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(message.count + message.count / 64 + 5)
        message.withUnsafeBufferPointer { m in
            let n = m.count
            var i = 0
            // Runs of ordinary bytes are copied whole; only CR, LF and a dot at a line start
            // need attention (a message built here has CRLF lines and rarely a leading dot).
            var lineStart = true
            while i < n {
                if lineStart && m[i] == 0x2E { out.append(0x2E) }
                var j = i
                while j < n && m[j] != 0x0D && m[j] != 0x0A { j += 1 }
                if j > i { out.append(contentsOf: UnsafeBufferPointer(rebasing: m[i..<j])) }
                if j == n {
                    lineStart = false
                    i = n
                    break
                }
                // CR LF, a bare CR or a bare LF: one CRLF.
                out.append(0x0D)
                out.append(0x0A)
                i = (m[j] == 0x0D && j + 1 < n && m[j + 1] == 0x0A) ? j + 2 : j + 1
                lineStart = true
            }
            if !lineStart { out.append(contentsOf: [0x0D, 0x0A]) }
        }
        out.append(contentsOf: [0x2E, 0x0D, 0x0A])
        return out
    }
}
