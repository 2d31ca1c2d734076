/// EmailAddress: recipient checks (SPEC §4 "Recipient").
///
/// `injectionProblem` applies always, whatever `validate_address` says: a string that is
/// empty, lacks `@` with text on both sides, or holds whitespace, control characters, `<`,
/// `>`, `,` or `;` could add a recipient or inject an SMTP command or header line.
/// `syntaxProblem` is the full check asked for with `validate_address: true`: RFC 5321 §4.1.2
/// / RFC 5322 §3.4.1 mailbox syntax — dot-atom or quoted-string local part (≤ 64 octets),
/// a domain of valid labels (LDH, 1–63 octets, no leading/trailing hyphen; UTF-8 U-labels
/// allowed per RFC 6531) with at least two labels, or an address literal `[IPv4]` /
/// `[IPv6:…]`; the whole ≤ 254 octets (RFC 5321 §4.5.3.1.3 path limit minus the brackets).
public enum EmailAddress {
    public static func injectionProblem(_ s: String) -> String? {
        if s.isEmpty { return "must not be empty" }
        // RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its <>; and the To: line
        // must stay under RFC 5322's 998 whether or not the address is checked in full.
        if s.utf8.count > 254 { return "must be at most 254 octets" }
        for u in s.unicodeScalars {
            let v = u.value
            if v < 0x80 {   // ASCII fast path (Unicode property look-ups are costly per scalar)
                if v < 0x20 || v == 0x7F { return "must not contain control characters" }
                if v == 0x20 { return "must not contain whitespace" }
                if v == 0x3C || v == 0x3E || v == 0x2C || v == 0x3B { return "must not contain <, >, , or ;" }
                continue
            }
            if v < 0xA0 { return "must not contain control characters" }
            if u.properties.isWhitespace { return "must not contain whitespace" }
        }
        // The last "@" byte (what an SMTP server splits on), not the last "@" Character: the
        // grapheme-aware search walks the string backwards at ~9 000 instructions a call.
        guard let at = s.utf8.lastIndex(of: 0x40), at != s.utf8.startIndex, s.utf8.index(after: at) != s.utf8.endIndex else {
            return "must contain @ with text on both sides"
        }
        return nil
    }

    public static func syntaxProblem(_ s: String) -> String? {
        if let p = injectionProblem(s) { return p }
        if s.utf8.count > 254 { return "must be at most 254 octets" }
        let at = s.utf8.lastIndex(of: 0x40)!
        let local = s[..<at]
        let domain = s[s.index(after: at)...]
        if local.utf8.count > 64 { return "local part must be at most 64 octets" }
        if local.hasPrefix("\"") {
            guard local.count >= 2, local.hasSuffix("\""), quotedStringOK(local.dropFirst().dropLast()) else {
                return "local part is not a valid quoted string"
            }
        } else if !dotAtomOK(local) {
            return "local part is not a valid dot-atom"
        }
        if domain.hasPrefix("[") {
            return addressLiteralOK(domain) ? nil : "domain literal is not a valid IP address"
        }
        return domainProblem(domain)
    }

    static let atext = Set("!#$%&'*+-/=?^_`{|}~".unicodeScalars)

    static func dotAtomOK(_ s: Substring) -> Bool {
        guard !s.isEmpty, !s.hasPrefix("."), !s.hasSuffix("."), !s.contains("..") else { return false }
        return s.unicodeScalars.allSatisfy { u in
            u == "." || u.value >= 0x80 || (u.properties.isASCIIHexDigit || (u.value >= 0x41 && u.value <= 0x5A) || (u.value >= 0x61 && u.value <= 0x7A) || (u.value >= 0x30 && u.value <= 0x39)) || atext.contains(u)
        }
    }

    static func quotedStringOK(_ s: Substring) -> Bool {
        var escaped = false
        for u in s.unicodeScalars {
            if escaped { escaped = false; continue }
            if u == "\\" { escaped = true; continue }
            if u == "\"" { return false }
        }
        return !escaped
    }

    static func domainProblem(_ d: Substring) -> String? {
        let labels = d.split(separator: ".", omittingEmptySubsequences: false)
        if labels.count < 2 { return "domain must have at least two labels" }
        for label in labels {
            if label.isEmpty { return "domain has an empty label" }
            if label.utf8.count > 63 { return "domain label longer than 63 octets" }
            if label.hasPrefix("-") || label.hasSuffix("-") { return "domain label starts or ends with a hyphen" }
            for u in label.unicodeScalars where !(u.value >= 0x80 || u == "-" || (u.value >= 0x30 && u.value <= 0x39)
                                                    || (u.value >= 0x41 && u.value <= 0x5A) || (u.value >= 0x61 && u.value <= 0x7A)) {
                return "domain contains an invalid character"
            }
        }
        if let tld = labels.last, tld.allSatisfy(\.isNumber) { return "top-level domain must not be numeric" }
        return nil
    }

    static func addressLiteralOK(_ d: Substring) -> Bool {
        guard d.hasSuffix("]"), d.count > 2 else { return false }
        let inner = d.dropFirst().dropLast()
        if inner.lowercased().hasPrefix("ipv6:") { return ipv6OK(inner.dropFirst(5)) }
        return ipv4OK(inner)
    }

    static func ipv4OK(_ s: Substring) -> Bool {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { p in
            !p.isEmpty && p.count <= 3 && p.allSatisfy(\.isASCII) && p.allSatisfy(\.isNumber) && Int(p)! <= 255 && !(p.count > 1 && p.hasPrefix("0"))
        }
    }

    static func ipv6OK(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) else { return false }
        let doubleColons = s.components(separatedBy: "::").count - 1
        if doubleColons > 1 { return false }
        var groups = s.split(separator: ":", omittingEmptySubsequences: true)
        var needed = 8
        if let last = groups.last, last.contains(".") {
            guard ipv4OK(last) else { return false }
            groups.removeLast()
            needed = 6
        }
        guard groups.allSatisfy({ $0.count <= 4 && !$0.contains(".") }) else { return false }
        return doubleColons == 1 ? groups.count < needed : groups.count == needed
    }
}

extension Substring {
    func components(separatedBy sep: String) -> [Substring] {
        var out: [Substring] = []
        var rest = self
        while let r = rest.range(of: sep) {
            out.append(rest[..<r.lowerBound])
            rest = rest[r.upperBound...]
        }
        out.append(rest)
        return out
    }

    func range(of s: String) -> Range<Index>? {
        guard !s.isEmpty else { return nil }
        var i = startIndex
        while i < endIndex {
            if self[i...].hasPrefix(s) { return i..<index(i, offsetBy: s.count) }
            i = index(after: i)
        }
        return nil
    }
}
